;; oob_response.wat: hostile guest. Calls __guest_response(0xFFFFFFF0, 100),
;; a range past the end of its 1-page memory, then returns 1 (success).
;; Built with: wat2wasm oob_response.wat -o oob_response.wasm
(module
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (call $guest_response (i32.const 0xFFFFFFF0) (i32.const 100))
    (i32.const 1))
)
