;; trap.wat: hostile guest. __guest_call traps at once (unreachable).
;; Built with: wat2wasm trap.wat -o trap.wasm
(module
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (unreachable))
)
