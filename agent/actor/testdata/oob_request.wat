;; oob_request.wat: hostile guest. Calls __guest_request with both pointers at
;; 0xFFFFFF00, past the end of its 1-page memory, then returns 1 (success).
;; Built with: wat2wasm oob_request.wat -o oob_request.wasm
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (call $guest_request (i32.const 0xFFFFFF00) (i32.const 0xFFFFFF00))
    (i32.const 1))
)
