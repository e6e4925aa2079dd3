;; hostcall.wat: forwards every call to the host with __host_call.
;; Built with: wat2wasm hostcall.wat -o hostcall.wasm
;;
;; Called with operation OP and payload P, it calls
;; __host_call(binding "default", namespace OP, operation "echo", payload P).
;; On success it responds with the host's response bytes (__host_response_len,
;; __host_response). On a host error it reports the host's error text as its
;; own guest error (__host_error_len, __host_error) and returns 0.
;;
;; Memory layout: constant strings at 0, request buffer at 1024 (operation,
;; then payload), the host's response or error right after the payload.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call"
    (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))

  (memory (export "memory") 1)
  (data (i32.const 0) "default")        ;; 7 bytes
  (data (i32.const 8) "echo")           ;; 4 bytes
  (data (i32.const 16) "out of memory") ;; 13 bytes

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

  (func $out_of_memory (result i32)
    (call $guest_error (i32.const 16) (i32.const 13))
    (i32.const 0))

  (func (export "__guest_call") (param $op_size i32) (param $payload_size i32) (result i32)
    (local $payload_ptr i32)
    (local $result_ptr i32)
    (local $result_len i32)
    (if (i32.eqz (call $reserve
          (i64.add (i64.const 1024)
            (i64.add (i64.extend_i32_u (local.get $op_size))
                     (i64.extend_i32_u (local.get $payload_size))))))
      (then (return (call $out_of_memory))))
    (local.set $payload_ptr (i32.add (i32.const 1024) (local.get $op_size)))
    (local.set $result_ptr (i32.add (local.get $payload_ptr) (local.get $payload_size)))
    (call $guest_request (i32.const 1024) (local.get $payload_ptr))

    (if (call $host_call
          (i32.const 0) (i32.const 7)                          ;; binding "default"
          (i32.const 1024) (local.get $op_size)                ;; namespace = our operation
          (i32.const 8) (i32.const 4)                          ;; operation "echo"
          (local.get $payload_ptr) (local.get $payload_size))  ;; payload = our payload
      (then
        (local.set $result_len (call $host_response_len))
        (if (i32.eqz (call $reserve (i64.add (i64.extend_i32_u (local.get $result_ptr))
                                             (i64.extend_i32_u (local.get $result_len)))))
          (then (return (call $out_of_memory))))
        (call $host_response (local.get $result_ptr))
        (call $guest_response (local.get $result_ptr) (local.get $result_len))
        (return (i32.const 1))))

    (local.set $result_len (call $host_error_len))
    (if (i32.eqz (call $reserve (i64.add (i64.extend_i32_u (local.get $result_ptr))
                                         (i64.extend_i32_u (local.get $result_len)))))
      (then (return (call $out_of_memory))))
    (call $host_error (local.get $result_ptr))
    (call $guest_error (local.get $result_ptr) (local.get $result_len))
    (i32.const 0))
)
