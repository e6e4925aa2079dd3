package kv_test

import (
	"strconv"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/kv"
)

// An actor counts its visits in its own bucket (the body of its init
// function).
func Example() {
	sdk.Handle("Visit", func([]byte) ([]byte, error) {
		n, err := kv.Increment("visits", 1)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(nil, n, 10), nil
	})
}

// Keys pages through a bucket: each call starts after the last key of the
// page before.
func ExampleKeys() {
	var all []string
	after := ""
	for {
		page, err := kv.Keys("user:", after, 0)
		if err != nil {
			sdk.Error(err.Error())
			return
		}
		all = append(all, page...)
		if len(page) < kv.MaxKeysPage {
			break
		}
		after = page[len(page)-1]
	}
	sdk.Info(strconv.Itoa(len(all)) + " users")
}
