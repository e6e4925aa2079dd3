//go:build !wasip1

package kv_test

import (
	"errors"
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/kv"
)

type m = map[string]any

func TestCalls(t *testing.T) {
	calltest.Run(t, kv.Namespace, []calltest.Case{
		{
			Name:    "get",
			Call:    func() (any, error) { v, ok, err := kv.Get("foo"); return []any{string(v), ok}, err },
			Answer:  marshal(m{"value": []byte("bar"), "exists": true}),
			Op:      "Get",
			Payload: "81a36b6579c403666f6f", // {key: bin "foo"}
			Want:    []any{"bar", true},
		},
		{
			Name:    "get of an empty value",
			Call:    func() (any, error) { v, ok, err := kv.Get("foo"); return []any{v != nil, len(v), ok}, err },
			Answer:  marshal(m{"value": nil, "exists": true}),
			Op:      "Get",
			Payload: "81a36b6579c403666f6f",
			Want:    []any{true, 0, true},
		},
		{
			Name:    "get of a missing key, with a key the sdk does not know",
			Call:    func() (any, error) { v, ok, err := kv.Get("foo"); return []any{v == nil, ok}, err },
			Answer:  marshal(m{"value": nil, "exists": false, "future": []any{1, m{"x": 2}}}),
			Op:      "Get",
			Payload: "81a36b6579c403666f6f",
			Want:    []any{true, false},
		},
		{
			Name:    "get, bad response",
			Call:    func() (any, error) { _, _, err := kv.Get("foo"); return nil, err },
			Answer:  marshal(m{"exists": "yes"}),
			Op:      "Get",
			Payload: "81a36b6579c403666f6f",
			WantErr: `sdk/kv: Get response: key "exists": msgpack: want bool, got str`,
		},
		{
			Name:    "get, empty response",
			Call:    func() (any, error) { _, _, err := kv.Get("foo"); return nil, err },
			Op:      "Get",
			Payload: "81a36b6579c403666f6f",
			WantErr: "sdk/kv: Get response: msgpack: payload ends early",
		},
		{
			Name:    "get, trailing bytes",
			Call:    func() (any, error) { _, _, err := kv.Get("foo"); return nil, err },
			Answer:  append(marshal(m{"exists": false}), 0),
			Op:      "Get",
			Payload: "81a36b6579c403666f6f",
			WantErr: "sdk/kv: Get response: msgpack: 1 trailing bytes",
		},
		{
			Name:    "set",
			Call:    func() (any, error) { return nil, kv.Set("foo", []byte("bar")) },
			Op:      "Set",
			Payload: "82a36b6579c403666f6fa576616c7565c403626172", // {key: bin, value: bin}
		},
		{
			Name:      "set denied",
			Call:      func() (any, error) { return nil, kv.Set("foo", []byte("bar")) },
			AnswerErr: errors.New("denied: actor a has no grant for trellis:kv"),
			Op:        "Set",
			Payload:   "82a36b6579c403666f6fa576616c7565c403626172",
			WantErr:   "sdk: host call trellis:kv/Set: denied: actor a has no grant for trellis:kv",
		},
		{
			Name:    "delete",
			Call:    func() (any, error) { return kv.Delete("foo") },
			Answer:  marshal(m{"existed": true}),
			Op:      "Delete",
			Payload: "81a36b6579c403666f6f",
			Want:    true,
		},
		{
			Name:    "increment",
			Call:    func() (any, error) { return kv.Increment("n", -1) },
			Answer:  marshal(m{"value": int64(-7)}),
			Op:      "Increment",
			Payload: "82a36b6579c4016ea564656c7461ff", // {key: bin "n", delta: -1}
			Want:    int64(-7),
		},
		{
			Name:    "increment, no value",
			Call:    func() (any, error) { return kv.Increment("n", -1) },
			Answer:  marshal(m{}),
			Op:      "Increment",
			Payload: "82a36b6579c4016ea564656c7461ff",
			WantErr: "sdk/kv: Increment response: no value",
		},
		{
			Name:    "keys",
			Call:    func() (any, error) { return kv.Keys("a", "", 10) },
			Answer:  marshal(m{"keys": [][]byte{[]byte("a1"), []byte("a2")}}),
			Op:      "Keys",
			Payload: "83a6707265666978c40161a56166746572c400a56c696d69740a", // {prefix: bin, after: bin, limit: 10}
			Want:    []string{"a1", "a2"},
		},
		{
			Name:    "keys, none",
			Call:    func() (any, error) { return kv.Keys("a", "", 10) },
			Answer:  marshal(m{"keys": nil}),
			Op:      "Keys",
			Payload: "83a6707265666978c40161a56166746572c400a56c696d69740a",
			Want:    []string{},
		},
		{
			Name:    "keys, a count the response cannot hold",
			Call:    func() (any, error) { return kv.Keys("a", "", 10) },
			Answer:  calltest.Hex("81a46b657973dd7fffffff"),
			Op:      "Keys",
			Payload: "83a6707265666978c40161a56166746572c400a56c696d69740a",
			WantErr: `key "keys": msgpack: array of 2147483647 declared, 0 bytes left`,
		},
		{
			Name:    "compare and set, must not exist",
			Call:    func() (any, error) { return kv.CompareAndSet("k", nil, []byte("v")) },
			Answer:  marshal(m{"swapped": true}),
			Op:      "CompareAndSet",
			Payload: "83a36b6579c4016ba36f6c64c0a36e6577c40176", // {key, old: nil, new}
			Want:    true,
		},
		{
			Name:    "compare and set, empty old value",
			Call:    func() (any, error) { return kv.CompareAndSet("k", []byte{}, []byte("v")) },
			Answer:  marshal(m{"swapped": false}),
			Op:      "CompareAndSet",
			Payload: "83a36b6579c4016ba36f6c64c400a36e6577c40176", // {key, old: bin "", new}
			Want:    false,
		},
	})
}

// marshal encodes v as the host does, with its msgpack library.
func marshal(v any) []byte {
	b, err := vm.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
