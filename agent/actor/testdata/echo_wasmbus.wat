;; echo_wasmbus.wat: echo.wat as a wasmCloud 0.x-style actor (imports from "wasmbus").
;; Built with: wat2wasm echo_wasmbus.wat -o echo_wasmbus.wasm
;;
;; For any operation it responds with the payload unchanged. Operation "fail"
;; reports the guest error "fail requested" and returns 0 instead.
;; Memory starts at 1 page with no declared maximum; __guest_call grows it to
;; fit the request (payloads of several MiB are fine) and reports the guest
;; error "out of memory" if it cannot. The hot path has no loop over the payload.
;;
;; Memory layout: constant strings at 0, request buffer at 1024:
;; the operation at 1024, the payload right after it.
(module
  (import "wasmbus" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wasmbus" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wasmbus" "__guest_error" (func $guest_error (param i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 0) "fail requested")  ;; 14 bytes
  (data (i32.const 16) "out of memory")  ;; 13 bytes

  ;; $reserve grows memory so that bytes [0, end) exist; returns 0 if it cannot.
  ;; end is i64 so operation_size + payload_size cannot wrap around.
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
        (call $guest_error (i32.const 16) (i32.const 13))
        (return (i32.const 0))))
    (local.set $payload_ptr (i32.add (i32.const 1024) (local.get $op_size)))
    (call $guest_request (i32.const 1024) (local.get $payload_ptr))
    ;; operation == "fail": 4 bytes, little-endian "fail" = 0x6c696166
    (if (i32.and
          (i32.eq (local.get $op_size) (i32.const 4))
          (i32.eq (i32.load (i32.const 1024)) (i32.const 0x6c696166)))
      (then
        (call $guest_error (i32.const 0) (i32.const 14))
        (return (i32.const 0))))
    (call $guest_response (local.get $payload_ptr) (local.get $payload_size))
    (i32.const 1))
)
