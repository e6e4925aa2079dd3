;; loop.wat: hostile guest. __guest_call loops forever.
;; Built with: wat2wasm loop.wat -o loop.wasm
;;
;; Only a deadline can stop it (wazero WithCloseOnContextDone); the instance is
;; unusable afterwards.
(module
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (loop $forever (br $forever))
    (unreachable))
)
