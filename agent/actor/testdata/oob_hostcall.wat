;; oob_hostcall.wat: hostile guest. Calls __host_call with a valid binding but
;; wild namespace, operation and payload pointers/lengths, then returns 1.
;; If the host returns from __host_call instead of trapping, the guest responds
;; with one byte, "0" or "1", the value __host_call returned.
;; Built with: wat2wasm oob_hostcall.wat -o oob_hostcall.wasm
(module
  (import "wapc" "__host_call"
    (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "default") ;; 7 bytes
  (func (export "__guest_call") (param i32 i32) (result i32)
    (i32.store8 (i32.const 8)
      (i32.add (i32.const 0x30)            ;; "0" + result
        (call $host_call
          (i32.const 0) (i32.const 7)                   ;; binding "default"
          (i32.const 0xFFFF0000) (i32.const 0x7FFFFFFF) ;; namespace: past the end
          (i32.const 0xFFFFFFFF) (i32.const 0xFFFFFFFF) ;; operation: wraps around
          (i32.const 0) (i32.const 0x7FFFFFFF))))       ;; payload: starts in bounds, too long
    (call $guest_response (i32.const 8) (i32.const 1))
    (i32.const 1))
)
