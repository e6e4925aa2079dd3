;; init_none.wat: init-order fixture. Exports no init function: the response is empty.
;; Built with: wat2wasm init_none.wat -o init_none.wasm
;;
;; Each init function appends one marker byte to a log in memory:
;; "I" for _initialize, "S" for _start, "W" for wapc_init. Running an init
;; twice appends twice, so double runs are visible. __guest_call ignores the
;; request (it never calls __guest_request) and responds with the log.
(module
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))

  (memory (export "memory") 1)
  (global $len (mut i32) (i32.const 0))  ;; log bytes live at 16 .. 16+len

  (func $mark (param $b i32)
    (i32.store8 (i32.add (i32.const 16) (global.get $len)) (local.get $b))
    (global.set $len (i32.add (global.get $len) (i32.const 1))))

  (func (export "__guest_call") (param i32 i32) (result i32)
    (call $guest_response (i32.const 16) (global.get $len))
    (i32.const 1))
)
