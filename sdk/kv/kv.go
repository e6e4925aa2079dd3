// Package kv is the guest side of trellis:kv: the actor's own key-value
// bucket in the device's store, kept across restarts. The host chooses the
// bucket by the calling actor's name, so an actor reaches only its own.
// The actor needs the grant `kv: true`; without it every call fails with
// an error that says "denied".
//
// Keys and values are bytes (a Go string holds any bytes). Counters made
// by Increment are stored as decimal text, so Get of a counter reads "42".
// Each actor has a quota of keys and bytes, which the host enforces.
//
//	func init() {
//		sdk.Handle("Visit", func([]byte) ([]byte, error) {
//			n, err := kv.Increment("visits", 1)
//			if err != nil {
//				return nil, err
//			}
//			return strconv.AppendInt(nil, n, 10), nil
//		})
//	}
//
// Errors the host returns are *sdk.HostError; an answer that does not
// decode is an error naming the operation and the key at fault.
package kv

import (
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:kv"

// MaxKeysPage is the most keys one Keys call returns, and its page size
// when limit is 0.
const MaxKeysPage = 1000

// Get returns the value of key and whether the key exists.
func Get(key string) (value []byte, exists bool, err error) {
	b := msgpack.AppendMapHeader(nil, 1)
	b = appendBinKey(b, "key", key)
	resp, err := wire.Call(Namespace, "Get", b)
	if err != nil {
		return nil, false, err
	}
	err = wire.DecodeMap("sdk/kv: Get response", resp, func(d *msgpack.Decoder, k string) (err error) {
		switch k {
		case "value":
			value, err = d.Bytes()
		case "exists":
			exists, err = d.Bool()
		default:
			err = d.Skip()
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if !exists {
		value = nil
	} else if value == nil {
		value = []byte{}
	}
	return value, exists, nil
}

// Set stores value under key, replacing any value it had.
func Set(key string, value []byte) error {
	b := msgpack.AppendMapHeader(nil, 2)
	b = appendBinKey(b, "key", key)
	b = msgpack.AppendBin(msgpack.AppendString(b, "value"), value)
	_, err := wire.Call(Namespace, "Set", b)
	return err
}

// Delete removes key and reports whether it existed.
func Delete(key string) (existed bool, err error) {
	b := msgpack.AppendMapHeader(nil, 1)
	b = appendBinKey(b, "key", key)
	resp, err := wire.Call(Namespace, "Delete", b)
	if err != nil {
		return false, err
	}
	err = wire.DecodeMap("sdk/kv: Delete response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "existed" {
			existed, err = d.Bool()
			return err
		}
		return d.Skip()
	})
	return existed, err
}

// Increment adds delta (which may be negative) to the counter under key
// and returns its new value. A missing key counts from 0; a key whose
// value is not a decimal integer is an error.
func Increment(key string, delta int64) (int64, error) {
	b := msgpack.AppendMapHeader(nil, 2)
	b = appendBinKey(b, "key", key)
	b = msgpack.AppendInt(msgpack.AppendString(b, "delta"), delta)
	resp, err := wire.Call(Namespace, "Increment", b)
	if err != nil {
		return 0, err
	}
	var value int64
	seen := false
	err = wire.DecodeMap("sdk/kv: Increment response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "value" {
			seen = true
			value, err = d.Int()
			return err
		}
		return d.Skip()
	})
	if err == nil && !seen {
		err = wire.Invalid("sdk/kv: Increment response", "no value")
	}
	return value, err
}

// Keys returns the keys that start with prefix and sort after after, in
// order, at most limit of them (0 means MaxKeysPage, the most there can
// be). To page through many keys, call it again with after set to the
// last key of the page until a page comes back shorter than asked.
func Keys(prefix, after string, limit int) ([]string, error) {
	b := msgpack.AppendMapHeader(nil, 3)
	b = appendBinKey(b, "prefix", prefix)
	b = appendBinKey(b, "after", after)
	b = msgpack.AppendInt(msgpack.AppendString(b, "limit"), int64(limit))
	resp, err := wire.Call(Namespace, "Keys", b)
	if err != nil {
		return nil, err
	}
	var keys []string
	err = wire.DecodeMap("sdk/kv: Keys response", resp, func(d *msgpack.Decoder, k string) error {
		if k != "keys" {
			return d.Skip()
		}
		n, err := d.ArrayLen()
		if err != nil {
			return err
		}
		keys = make([]string, 0, n) // n is bounded by the response's size
		for range n {
			key, err := d.Bytes()
			if err != nil {
				return err
			}
			keys = append(keys, string(key))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// CompareAndSet stores new under key if its value is old, and reports
// whether it did. A nil old means that the key must not exist (so the call
// creates it); a non-nil empty old matches an empty value.
func CompareAndSet(key string, old, new []byte) (swapped bool, err error) {
	b := msgpack.AppendMapHeader(nil, 3)
	b = appendBinKey(b, "key", key)
	b = msgpack.AppendString(b, "old")
	if old == nil {
		b = msgpack.AppendNil(b)
	} else {
		b = msgpack.AppendBin(b, old)
	}
	b = msgpack.AppendBin(msgpack.AppendString(b, "new"), new)
	resp, err := wire.Call(Namespace, "CompareAndSet", b)
	if err != nil {
		return false, err
	}
	err = wire.DecodeMap("sdk/kv: CompareAndSet response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "swapped" {
			swapped, err = d.Bool()
			return err
		}
		return d.Skip()
	})
	return swapped, err
}

// appendBinKey appends the map entry name: s as a bin (keys are bytes).
func appendBinKey(b []byte, name, s string) []byte {
	b = msgpack.AppendString(b, name)
	return msgpack.AppendBinString(b, s)
}
