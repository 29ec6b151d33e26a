// Package seccomp builds and installs cordon's seccomp filter: a classic BPF program that
// checks the architecture, refuses a fixed list of system calls that a confined command never
// needs (kernel keyrings, BPF, io_uring, module loading, mounting, handles that bypass path
// checks), refuses keystroke injection into a terminal, refuses new user namespaces unless
// nesting is allowed, and restricts which sockets may be created.
//
// Every refusal returns an errno (EPERM unless a different one lets programs fall back
// gracefully: ENOSYS for io_uring and clone3, EAFNOSUPPORT for socket families,
// EPROTONOSUPPORT for MPTCP); only a system call of a foreign architecture kills the process.
package seccomp
