;; console.wat: logs the payload with __console_log, then echoes it.
;; Built with: wat2wasm console.wat -o console.wasm
;;
;; Memory layout: "out of memory" at 0, request buffer at 1024 (operation,
;; then payload).
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__console_log" (func $console_log (param i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 0) "out of memory") ;; 13 bytes

  ;; $reserve grows memory so that bytes [0, end) exist; returns 0 if it cannot.
  (func $reserve (param $end i64) (result i32)
    (local $pages i64)
    (local.set $pages (i64.shr_u (i64.add (local.get $end) (i64.const 0xFFFF)) (i64.const 16)))
    (if (i64.gt_u (local.get $pages) (i64.const 65536)) (then (return (i32.const 0))))
    (if (i64.gt_u (local.get $pages) (i64.extend_i32_u (memory.size)))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (i32.wrap_i64 (local.get $pages)) (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1))

  (func (export "__guest_call") (param $op_size i32) (param $payload_size i32) (result i32)
    (local $payload_ptr i32)
    (if (i32.eqz (call $reserve
          (i64.add (i64.const 1024)
            (i64.add (i64.extend_i32_u (local.get $op_size))
                     (i64.extend_i32_u (local.get $payload_size))))))
      (then
        (call $guest_error (i32.const 0) (i32.const 13))
        (return (i32.const 0))))
    (local.set $payload_ptr (i32.add (i32.const 1024) (local.get $op_size)))
    (call $guest_request (i32.const 1024) (local.get $payload_ptr))
    (call $console_log (local.get $payload_ptr) (local.get $payload_size))
    (call $guest_response (local.get $payload_ptr) (local.get $payload_size))
    (i32.const 1))
)
