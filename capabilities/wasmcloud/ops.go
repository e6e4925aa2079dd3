package wasmcloud

// Operation names of the wasmbus era: "Service.Operation", as wasmbus-rpc
// senders name them (wasmCloud/interfaces */tinygo/*.go and
// */rust/src/*.rs: Message{Method: "KeyValue.Get", ...}).
const (
	// wasmcloud:httpserver, host → actor.
	OpHandleRequest = "HttpServer.HandleRequest"

	// Every actor, host → actor (wasmCloud/interfaces
	// core/wasmcloud-core.smithy, service Actor).
	OpHealthRequest = "Actor.HealthRequest"

	// wasmcloud:keyvalue, actor → host (keyvalue/keyvalue.smithy).
	OpKVGet             = "KeyValue.Get"
	OpKVSet             = "KeyValue.Set"
	OpKVDel             = "KeyValue.Del"
	OpKVIncrement       = "KeyValue.Increment"
	OpKVContains        = "KeyValue.Contains"
	OpKVListAdd         = "KeyValue.ListAdd"
	OpKVListClear       = "KeyValue.ListClear"
	OpKVListDel         = "KeyValue.ListDel"
	OpKVListRange       = "KeyValue.ListRange"
	OpKVSetAdd          = "KeyValue.SetAdd"
	OpKVSetDel          = "KeyValue.SetDel"
	OpKVSetIntersection = "KeyValue.SetIntersection"
	OpKVSetQuery        = "KeyValue.SetQuery"
	OpKVSetUnion        = "KeyValue.SetUnion"
	OpKVSetClear        = "KeyValue.SetClear"
	OpKVKeys            = "KeyValue.Keys"

	// wasmcloud:messaging (messaging/messaging.smithy).
	OpPublish       = "Messaging.Publish"               // actor → host
	OpRequest       = "Messaging.Request"               // actor → host
	OpHandleMessage = "MessageSubscriber.HandleMessage" // host → actor

	// wasmcloud:builtin:logging (logging/logging.smithy).
	OpWriteLog = "Logging.WriteLog"

	// wasmcloud:builtin:numbergen (numbergen/numbergen.smithy).
	OpGenerateGuid  = "NumberGen.GenerateGuid"
	OpRandomInRange = "NumberGen.RandomInRange"
	OpRandom32      = "NumberGen.Random32"
	OpRandomBytes   = "NumberGen.RandomBytes"
)

// Operation names of the 0.18 and waSCC eras: bare, as registered with
// wapc-guest's register_function and passed to host_call.
const (
	// wasmcloud:httpserver, wascc:http_server, host → actor
	// (actor-interfaces http-server/rust/src/generated.rs; wascc-codec
	// src/http.rs OP_HANDLE_REQUEST).
	OpLegacyHandleRequest = "HandleRequest"

	// Every actor, host → actor (actor-interfaces
	// actor-core/rust/wasmcloud-actor-core/src/generated.rs; wascc-codec
	// src/core.rs OP_HEALTH_REQUEST).
	OpLegacyHealthRequest = "HealthRequest"

	// wasmcloud:keyvalue (0.18), wascc:keyvalue, actor → host
	// (actor-interfaces keyvalue/rust/src/generated.rs; wascc-codec
	// src/keyvalue.rs OP_*).
	OpLegacyGet             = "Get"
	OpLegacyAdd             = "Add"
	OpLegacySet             = "Set"
	OpLegacyDel             = "Del"
	OpLegacyClear           = "Clear"
	OpLegacyRange           = "Range"
	OpLegacyPush            = "Push"
	OpLegacyListItemDelete  = "ListItemDelete"
	OpLegacySetAdd          = "SetAdd"
	OpLegacySetRemove       = "SetRemove"
	OpLegacySetUnion        = "SetUnion"
	OpLegacySetIntersection = "SetIntersection"
	OpLegacySetQuery        = "SetQuery"
	OpLegacyKeyExists       = "KeyExists"

	// wasmcloud:messaging (0.18), wascc:messaging.
	OpLegacyPublish = "Publish" // actor → host
	OpLegacyRequest = "Request" // actor → host
	// OpLegacyDeliverMessage is the delivery op of waSCC (wascc-codec
	// src/messaging.rs) and of the 0.18 NATS provider
	// (wasmCloud/capability-providers nats/src/lib.rs OP_DELIVER_MESSAGE).
	OpLegacyDeliverMessage = "DeliverMessage"
	// OpLegacyHandleMessage is the delivery op a 0.18 actor built with
	// wasmcloud-actor-messaging registers (actor-interfaces
	// messaging/rust/src/lib.rs OP_HANDLE_MESSAGE). See the table entry:
	// the public sources disagree with the 0.18 provider.
	OpLegacyHandleMessage = "HandleMessage"

	// wasmcloud:logging (0.18), wascc:logging, actor → host.
	OpLegacyWriteLog = "WriteLog"

	// wasmcloud:extras (0.18), wascc:extras, actor → host.
	OpLegacyRequestGuid     = "RequestGuid"
	OpLegacyRequestRandom   = "RequestRandom"
	OpLegacyRequestSequence = "RequestSequence"
)

// Direction says who calls an operation.
type Direction uint8

const (
	// ActorToHost is a host call the actor makes (__host_call), served by a
	// capability handler.
	ActorToHost Direction = iota + 1
	// HostToActor is an invocation of the actor (__guest_call).
	HostToActor
)

// String returns "actor→host" or "host→actor".
func (d Direction) String() string {
	switch d {
	case ActorToHost:
		return "actor→host"
	case HostToActor:
		return "host→actor"
	}
	return "direction(?)"
}

// Operation is one operation of one era, with its payload shapes in msgpack
// terms and the public file they were taken from.
type Operation struct {
	// Namespace is the contract id; "" for the actor-core health operation,
	// which every actor exports whatever it is linked to.
	Namespace string
	// Name is the exact waPC operation string.
	Name      string
	Era       Era
	Direction Direction
	// Input and Output describe the payloads: "{key: str, value: i32}" is a
	// map with those keys, a bare type is a bare msgpack value, "empty" is
	// a zero-length payload, "ignored" is read by nobody.
	Input, Output string
	// Source names the public repository and file the shapes come from.
	Source string
}

// Sources, by file.
const (
	srcSmithyHTTP      = "wasmCloud/interfaces httpserver/httpserver.smithy"
	srcSmithyKV        = "wasmCloud/interfaces keyvalue/keyvalue.smithy"
	srcSmithyMessaging = "wasmCloud/interfaces messaging/messaging.smithy"
	srcSmithyLogging   = "wasmCloud/interfaces logging/logging.smithy"
	srcSmithyNumberGen = "wasmCloud/interfaces numbergen/numbergen.smithy"
	srcSmithyCore      = "wasmCloud/interfaces core/wasmcloud-core.smithy"
	src018HTTP         = "wasmCloud/actor-interfaces http-server/httpserver.widl, http-server/rust/src/generated.rs"
	src018KV           = "wasmCloud/actor-interfaces keyvalue/keyvalue.widl, keyvalue/rust/src/generated.rs"
	src018Messaging    = "wasmCloud/actor-interfaces messaging/messaging.widl, messaging/rust/src/generated.rs"
	src018NATS         = "wasmCloud/capability-providers nats/src/lib.rs, nats/src/natsprov.rs"
	src018Logging      = "wasmCloud/actor-interfaces logging/logging.widl, logging/rust/src/generated.rs"
	src018Extras       = "wasmCloud/actor-interfaces extras/extras.widl, extras/rust/src/generated.rs"
	src018Core         = "wasmCloud/actor-interfaces actor-core/core.widl, actor-core/rust/wasmcloud-actor-core/src/generated.rs"
	srcWaSCCHTTP       = "protochron/wascc-codec src/http.rs (fork of wascc-codec)"
	srcWaSCCKV         = "protochron/wascc-codec src/keyvalue.rs; wasmCloud/wascc-actor src/keyvalue.rs"
	srcWaSCCMessaging  = "protochron/wascc-codec src/messaging.rs; wasmCloud/wascc-actor src/messaging.rs"
	srcWaSCCLogging    = "protochron/wascc-codec src/logging.rs; wasmCloud/wascc-actor src/logging.rs"
	srcWaSCCExtras     = "protochron/wascc-codec src/extras.rs; wasmCloud/wascc-actor src/extras.rs"
	srcWaSCCCore       = "protochron/wascc-codec src/core.rs; wasmCloud/wascc-actor src/lib.rs"
)

func wasmbusOps() []Operation {
	kv := func(name, in, out string) Operation {
		return Operation{KeyValue, name, EraWasmbus, ActorToHost, in, out, srcSmithyKV}
	}
	return []Operation{
		{HTTPServer, OpHandleRequest, EraWasmbus, HostToActor,
			"{method: str, path: str, queryString: str, header: map<str, [str]>, body: bin}",
			"{statusCode: u16, header: map<str, [str]>, body: bin}", srcSmithyHTTP},
		{"", OpHealthRequest, EraWasmbus, HostToActor,
			"{} (HealthCheckRequest has no fields)",
			"{healthy?: bool, message?: str}", srcSmithyCore},

		kv(OpKVGet, "str (the key)", "{value: str, exists: bool}"),
		kv(OpKVSet, "{key: str, value: str, expires: u32}", "empty"),
		kv(OpKVDel, "str", "bool"),
		kv(OpKVIncrement, "{key: str, value: i32}", "i32 (bare, not a map)"),
		kv(OpKVContains, "str", "bool"),
		kv(OpKVListAdd, "{listName: str, value: str}", "u32"),
		kv(OpKVListClear, "str", "bool"),
		kv(OpKVListDel, "{listName: str, value: str}", "bool"),
		kv(OpKVListRange, "{listName: str, start: i32, stop: i32}", "[str]"),
		kv(OpKVSetAdd, "{setName: str, value: str}", "u32"),
		kv(OpKVSetDel, "{setName: str, value: str}", "u32"),
		kv(OpKVSetIntersection, "[str] (set names)", "[str]"),
		kv(OpKVSetQuery, "str", "[str]"),
		kv(OpKVSetUnion, "[str] (set names)", "[str]"),
		kv(OpKVSetClear, "str", "bool"),
		kv(OpKVKeys, "{globExpression?: str, config?: str}", "[str]"),

		{Messaging, OpPublish, EraWasmbus, ActorToHost,
			"{subject: str, replyTo?: str, body: bin}", "empty", srcSmithyMessaging},
		{Messaging, OpRequest, EraWasmbus, ActorToHost,
			"{subject: str, body: bin, timeoutMs: u32}",
			"{subject: str, replyTo?: str, body: bin}", srcSmithyMessaging},
		{Messaging, OpHandleMessage, EraWasmbus, HostToActor,
			"{subject: str, replyTo?: str, body: bin}", "empty", srcSmithyMessaging},

		{Logging, OpWriteLog, EraWasmbus, ActorToHost,
			"{level: str, text: str} (level: debug, info, warn, error)", "empty", srcSmithyLogging},

		{NumberGen, OpGenerateGuid, EraWasmbus, ActorToHost, "empty", "str (v4 UUID)", srcSmithyNumberGen},
		{NumberGen, OpRandomInRange, EraWasmbus, ActorToHost, "{min: u32, max: u32}", "u32", srcSmithyNumberGen},
		{NumberGen, OpRandom32, EraWasmbus, ActorToHost, "empty", "u32", srcSmithyNumberGen},
		{NumberGen, OpRandomBytes, EraWasmbus, ActorToHost,
			"u32 (byte count)", "list<u8>: msgpack form unconfirmed, no codec here", srcSmithyNumberGen},
	}
}

func legacyOps() []Operation {
	var ops []Operation
	for _, era := range []Era{Era018, EraWaSCC} {
		ns := map[string]string{HTTPServer: HTTPServer, KeyValue: KeyValue, Messaging: Messaging, "log": Logging018, "extras": Extras018}
		src := map[string]string{"http": src018HTTP, "kv": src018KV, "msg": src018Messaging, "log": src018Logging, "extras": src018Extras, "core": src018Core}
		setCount := "{new_count: i32}"
		if era == EraWaSCC {
			ns = map[string]string{HTTPServer: WaSCCHTTPServer, KeyValue: WaSCCKeyValue, Messaging: WaSCCMessaging, "log": WaSCCLogging, "extras": WaSCCExtras}
			src = map[string]string{"http": srcWaSCCHTTP, "kv": srcWaSCCKV, "msg": srcWaSCCMessaging, "log": srcWaSCCLogging, "extras": srcWaSCCExtras, "core": srcWaSCCCore}
			setCount = "{newCount: i32}"
		}
		kv := func(name, in, out string) Operation {
			return Operation{ns[KeyValue], name, era, ActorToHost, in, out, src["kv"]}
		}
		ops = append(ops,
			Operation{ns[HTTPServer], OpLegacyHandleRequest, era, HostToActor,
				"{method: str, path: str, queryString: str, header: map<str, str>, body: bin}",
				"{statusCode: u32, status: str, header: map<str, str>, body: bin}", src["http"]},
			Operation{"", OpLegacyHealthRequest, era, HostToActor, "{placeholder: bool}",
				map[Era]string{
					Era018:   "{healthy: bool, message: str}",
					EraWaSCC: "empty (success means healthy)",
				}[era], src["core"]},

			kv(OpLegacyGet, "{key: str}", "{value: str, exists: bool}"),
			kv(OpLegacyAdd, "{key: str, value: i32}", "{value: i32} (a map, not a bare int)"),
			kv(OpLegacySet, "{key: str, value: str, expires: i32}", "{value: str}"),
			kv(OpLegacyDel, "{key: str}", "{key: str}"),
			kv(OpLegacyClear, "{key: str}", "{key: str}"),
			kv(OpLegacyRange, "{key: str, start: i32, stop: i32}", "{values: [str]}"),
			kv(OpLegacyPush, "{key: str, value: str}", "{newCount: i32}"),
			kv(OpLegacyListItemDelete, "{key: str, value: str}", "{newCount: i32}"),
			kv(OpLegacySetAdd, "{key: str, value: str}", setCount),
			kv(OpLegacySetRemove, "{key: str, value: str}", setCount),
			kv(OpLegacySetUnion, "{keys: [str]}", "{values: [str]}"),
			kv(OpLegacySetIntersection, "{keys: [str]}", "{values: [str]}"),
			kv(OpLegacySetQuery, "{key: str}", "{values: [str]}"),
			kv(OpLegacyKeyExists, "{key: str}", "{value: str, exists: bool}"),

			Operation{ns[Messaging], OpLegacyPublish, era, ActorToHost,
				"{subject: str, replyTo: str, body: bin}",
				map[Era]string{Era018: "{published: bool}", EraWaSCC: "ignored"}[era], src["msg"]},
			Operation{ns[Messaging], OpLegacyRequest, era, ActorToHost,
				"{subject: str, body: bin, timeout: i64 (ms)}",
				map[Era]string{
					Era018:   "{subject: str, replyTo: str, body: bin}",
					EraWaSCC: "the reply's raw bytes, no msgpack wrapper",
				}[era], src["msg"]},
			Operation{ns[Messaging], OpLegacyDeliverMessage, era, HostToActor,
				"{subject: str, replyTo: str, body: bin}", "ignored",
				map[Era]string{Era018: src018NATS, EraWaSCC: srcWaSCCMessaging}[era]},
		)
		switch era {
		case Era018:
			ops = append(ops,
				Operation{Messaging, OpLegacyHandleMessage, era, HostToActor,
					"{subject: str, replyTo: str, body: bin}", "nil (serialized ())",
					src018Messaging + " (the 0.18 NATS provider sends DeliverMessage instead: " + src018NATS + ")"},
				Operation{Logging018, OpLegacyWriteLog, era, ActorToHost,
					"{target: str, level: str, text: str}", "ignored", src018Logging},
				Operation{Extras018, OpLegacyRequestGuid, era, ActorToHost, "empty", "str", src018Extras},
				Operation{Extras018, OpLegacyRequestRandom, era, ActorToHost, "{min: u32, max: u32}", "u32", src018Extras},
				Operation{Extras018, OpLegacyRequestSequence, era, ActorToHost, "empty", "u64", src018Extras},
			)
		case EraWaSCC:
			const enum = "rmp-serde encoding of a Rust enum (GeneratorRequest/GeneratorResult): unconfirmed, no codec here"
			ops = append(ops,
				Operation{WaSCCLogging, OpLegacyWriteLog, era, ActorToHost,
					"{level: u32 (0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace), body: str}", "ignored", srcWaSCCLogging},
				Operation{WaSCCExtras, OpLegacyRequestGuid, era, ActorToHost, enum, enum, srcWaSCCExtras},
				Operation{WaSCCExtras, OpLegacyRequestRandom, era, ActorToHost, enum, enum, srcWaSCCExtras},
				Operation{WaSCCExtras, OpLegacyRequestSequence, era, ActorToHost, enum, enum, srcWaSCCExtras},
			)
		}
	}
	return ops
}

// operations is the table, built once; Operations hands out copies.
var operations = append(wasmbusOps(), legacyOps()...)

// Operations returns every known operation of every era. The slice is the
// caller's.
func Operations() []Operation {
	out := make([]Operation, len(operations))
	copy(out, operations)
	return out
}

// LookupHostCall finds the host call an actor makes as name on namespace.
// Within a namespace host-call names never repeat across eras, so the
// result's Era says which codec applies: wasmcloud:keyvalue "Get" is 0.18,
// "KeyValue.Get" is wasmbus. Operations the host invokes on actors are not
// searched: the host picks those by era (OpHandleRequest or
// OpLegacyHandleRequest).
func LookupHostCall(namespace, name string) (Operation, bool) {
	for _, op := range operations {
		if op.Direction == ActorToHost && op.Namespace == namespace && op.Name == name {
			return op, true
		}
	}
	return Operation{}, false
}
