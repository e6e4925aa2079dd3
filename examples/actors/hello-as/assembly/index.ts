// hello-as is a Trellis example actor written in AssemblyScript with the
// waPC guest library @wapc/as-guest. Host functions are imported from "wapc".
//
// Operations:
//   hello  responds "Hello, <payload>!" (the payload is UTF-8 text)
//   fail   fails with the guest error "fail requested"
//   log    logs the payload through the host (namespace "trellis:log",
//          level "info") and responds with the payload
// Any other operation fails with as-guest's own "Could not find function" error.
import { register, handleCall, hostCall, handleAbort, Result } from "@wapc/as-guest";

register("hello", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  const name = String.UTF8.decode(payload);
  return Result.ok<ArrayBuffer>(String.UTF8.encode("Hello, " + name + "!"));
});

register("fail", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.error<ArrayBuffer>(new Error("fail requested"));
});

register("log", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  const logged = hostCall("default", "trellis:log", "info", payload);
  if (!logged.isOk) {
    return Result.error<ArrayBuffer>(logged.error()!);
  }
  return Result.ok<ArrayBuffer>(payload);
});

// __guest_call is the waPC entry point; it must be exported from the entry file.
export function __guest_call(operation_size: usize, payload_size: usize): bool {
  return handleCall(operation_size, payload_size);
}

// abort replaces AssemblyScript's default abort (an "env.abort" import) via
// `--use abort=assembly/index/abort`: it reports the message as a guest error.
// The compiler follows every abort call with a trap, so the call fails.
function abort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {
  handleAbort(message, fileName, lineNumber, columnNumber);
}
