//go:build !wasip1

package numbergen_test

import (
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/numbergen"
)

func TestCalls(t *testing.T) {
	calltest.Run(t, numbergen.Namespace, []calltest.Case{
		{
			Name:    "guid",
			Call:    func() (any, error) { return numbergen.GenerateGuid() },
			Answer:  marshal("3f1c2e4a-0b1d-4c2e-8f00-0123456789ab"),
			Op:      "GenerateGuid",
			Payload: "",
			Want:    "3f1c2e4a-0b1d-4c2e-8f00-0123456789ab",
		},
		{
			Name:    "guid, not a string",
			Call:    func() (any, error) { return numbergen.GenerateGuid() },
			Answer:  marshal(5),
			Op:      "GenerateGuid",
			Payload: "",
			WantErr: "sdk/numbergen: GenerateGuid response: msgpack: want str, got int",
		},
		{
			Name:    "guid, empty",
			Call:    func() (any, error) { return numbergen.GenerateGuid() },
			Op:      "GenerateGuid",
			Payload: "",
			WantErr: "sdk/numbergen: GenerateGuid response: msgpack: payload ends early",
		},
		{
			Name:    "random32",
			Call:    func() (any, error) { return numbergen.Random32() },
			Answer:  marshal(uint32(4000000000)),
			Op:      "Random32",
			Payload: "",
			Want:    uint32(4000000000),
		},
		{
			Name:    "random32, out of range",
			Call:    func() (any, error) { return numbergen.Random32() },
			Answer:  marshal(uint64(1 << 40)),
			Op:      "Random32",
			Payload: "",
			WantErr: "overflows uint32",
		},
		{
			Name:    "random in range",
			Call:    func() (any, error) { return numbergen.RandomInRange(1, 6) },
			Answer:  marshal(uint32(4)),
			Op:      "RandomInRange",
			Payload: "82a36d696e01a36d617806", // {min: 1, max: 6}
			Want:    uint32(4),
		},
		{
			Name:    "random in range, empty response",
			Call:    func() (any, error) { return numbergen.RandomInRange(1, 6) },
			Op:      "RandomInRange",
			Payload: "82a36d696e01a36d617806",
			WantErr: "sdk/numbergen: RandomInRange response: empty",
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
