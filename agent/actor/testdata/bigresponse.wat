;; bigresponse.wat: responds with 1 MiB (16 pages) of "B" bytes starting at
;; 0x10000. The range is valid and in bounds (memory is 17 pages), just large:
;; tests run it with a smaller response limit.
;; Built with: wat2wasm bigresponse.wat -o bigresponse.wasm
(module
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (memory (export "memory") 17)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (memory.fill (i32.const 0x10000) (i32.const 0x42) (i32.const 0x100000)) ;; bulk memory
    (call $guest_response (i32.const 0x10000) (i32.const 0x100000))
    (i32.const 1))
)
