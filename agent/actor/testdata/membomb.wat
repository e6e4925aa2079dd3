;; membomb.wat: hostile guest. __guest_call grows memory one page at a time
;; until memory.grow fails (returns -1), then traps with unreachable.
;; Built with: wat2wasm membomb.wat -o membomb.wasm
;;
;; No maximum is declared, so only the host's page limit stops it: run it with
;; a small limit (e.g. wazero WithMemoryLimitPages).
(module
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (unreachable))
)
