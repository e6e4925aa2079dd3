;; recursion.wat: hostile guest. __guest_call recurses without bound; each
;; frame holds a few locals and the call is not in tail position.
;; Built with: wat2wasm recursion.wat -o recursion.wasm
(module
  (memory (export "memory") 1)
  (func $deeper (param $n i64) (result i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local.set $a (i64.add (local.get $n) (i64.const 1)))
    (i64.add (call $deeper (local.get $a)) (local.get $a)))
  (func (export "__guest_call") (param i32 i32) (result i32)
    (i32.wrap_i64 (call $deeper (i64.const 0))))
)
