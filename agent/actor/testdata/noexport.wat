;; noexport.wat: a valid module with memory but no __guest_call export.
;; Loading it as an actor must fail with a clear error.
;; Built with: wat2wasm noexport.wat -o noexport.wasm
(module
  (memory (export "memory") 1)
  (func (export "guest_call") (param i32 i32) (result i32) ;; wrong name on purpose
    (i32.const 1))
)
