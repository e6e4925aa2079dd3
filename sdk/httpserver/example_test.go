package httpserver_test

import "github.com/trellis-edge/trellis/sdk/httpserver"

// An actor answers the requests of its HTTP route (the body of its init
// function).
func Example() {
	httpserver.Handle(httpserver.DefaultOperation, func(r httpserver.Request) httpserver.Response {
		if r.Method != "GET" {
			return httpserver.Error(405, "only GET")
		}
		return httpserver.JSON(200, map[string]string{"path": r.Path, "agent": r.Header.Get("User-Agent")})
	})
}
