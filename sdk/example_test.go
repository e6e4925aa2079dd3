package sdk_test

import "github.com/trellis-edge/trellis/sdk"

// An actor registers its operations in an init function (main.main never
// runs in a c-shared module); its handlers may log and call other actors
// through the host.
func Example() {
	// The body of the actor's func init():
	sdk.Handle("greet", func(name []byte) ([]byte, error) {
		sdk.Info("greeting " + string(name))
		return append([]byte("hello, "), name...), nil
	})
	sdk.Handle("total", func(payload []byte) ([]byte, error) {
		return sdk.CallActor("ledger", "sum", payload) // errors are *sdk.HostError
	})
}
