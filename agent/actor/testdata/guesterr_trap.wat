;; guesterr_trap.wat: hostile guest in the AssemblyScript abort style: it
;; reports __guest_error("aborted") and then traps with unreachable.
;; Built with: wat2wasm guesterr_trap.wat -o guesterr_trap.wasm
(module
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "aborted") ;; 7 bytes
  (func (export "__guest_call") (param i32 i32) (result i32)
    (call $guest_error (i32.const 0) (i32.const 7))
    (unreachable))
)
