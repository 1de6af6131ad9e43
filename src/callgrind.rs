//! Valgrind client requests for callgrind: mark where a measurement starts and ends, from inside
//! the program, so the instruction count covers exactly the measured workload (not process
//! start, broker start or verification).
//!
//! A client request is valgrind's documented "magic" instruction sequence (see valgrind.h and
//! callgrind.h): rotations of a register that add up to a full turn (a no-op on real hardware)
//! followed by `xchg rbx, rbx`, with a pointer to the request's words in rax and the result in
//! rdx. Outside valgrind the sequence does nothing and returns the default value, so a program
//! carrying these calls runs unchanged natively.
//!
//! Only x86-64 is implemented (the machines CI runs on); elsewhere every request is a no-op and
//! [`running_on_valgrind`] says false, so the measuring test fails with that reason.

/// `VG_USERREQ_TOOL_BASE('C','T')`: callgrind's request numbers start here (callgrind.h).
const CALLGRIND_BASE: u64 = ((b'C' as u64) << 24) | ((b'T' as u64) << 16);
const DUMP_STATS_AT: u64 = CALLGRIND_BASE + 3;
const ZERO_STATS: u64 = CALLGRIND_BASE + 1;
const START_INSTRUMENTATION: u64 = CALLGRIND_BASE + 4;
const STOP_INSTRUMENTATION: u64 = CALLGRIND_BASE + 5;
/// `VG_USERREQ__RUNNING_ON_VALGRIND` (valgrind.h): answers the nesting depth, 0 natively.
const RUNNING_ON_VALGRIND: u64 = 0x1001;

#[cfg(target_arch = "x86_64")]
fn client_request(default: u64, request: u64, arg1: u64) -> u64 {
    let words: [u64; 6] = [request, arg1, 0, 0, 0, 0];
    let mut result = default;
    // SAFETY: the rotations of rdi add up to 128 bits (rdi ends unchanged, and it is declared
    // clobbered anyway); `xchg rbx, rbx` changes nothing. Valgrind reads `words` through rax
    // (alive for the whole asm block) and writes the answer to rdx.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") words.as_ptr(),
            out("rdi") _,
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(default: u64, _request: u64, _arg1: u64) -> u64 {
    default
}

/// True when the program runs under valgrind (any tool).
pub fn running_on_valgrind() -> bool {
    client_request(0, RUNNING_ON_VALGRIND, 0) != 0
}

/// Starts instrumenting code (with `--instr-atstart=no`, everything before runs uninstrumented
/// and fast).
pub fn start_instrumentation() {
    client_request(0, START_INSTRUMENTATION, 0);
}

pub fn stop_instrumentation() {
    client_request(0, STOP_INSTRUMENTATION, 0);
}

/// Sets every counter to zero.
pub fn zero_stats() {
    client_request(0, ZERO_STATS, 0);
}

/// Writes the counters since the last zero or dump to a new numbered output file whose
/// `desc: Trigger: Client Request: <reason>` line names `reason`, then zeroes them.
pub fn dump_stats_at(reason: &std::ffi::CStr) {
    client_request(0, DUMP_STATS_AT, reason.as_ptr() as u64);
}
