;; badimport.wat: imports env.abort (the AssemblyScript abort hook), which
;; Trellis does not provide. Loading it must fail with a clear error.
;; Built with: wat2wasm badimport.wat -o badimport.wasm
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (call $abort (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (i32.const 0))
)
