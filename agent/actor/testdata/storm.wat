;; storm.wat: hostile guest. __guest_call calls
;; __host_call("default", "trellis:log", "debug", "x") in an endless loop and
;; ignores the result: a log storm that only a deadline can stop.
;; Built with: wat2wasm storm.wat -o storm.wasm
(module
  (import "wapc" "__host_call"
    (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "default")      ;; 7 bytes
  (data (i32.const 8) "trellis:log")  ;; 11 bytes
  (data (i32.const 24) "debug")       ;; 5 bytes
  (data (i32.const 32) "x")           ;; 1 byte
  (func (export "__guest_call") (param i32 i32) (result i32)
    (loop $forever
      (drop (call $host_call
        (i32.const 0) (i32.const 7)
        (i32.const 8) (i32.const 11)
        (i32.const 24) (i32.const 5)
        (i32.const 32) (i32.const 1)))
      (br $forever))
    (unreachable))
)
