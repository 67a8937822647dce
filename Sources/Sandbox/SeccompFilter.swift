/// A seccomp-BPF program (classic BPF, as `bwrap --seccomp` loads it) that refuses the system
/// calls a task has no business making: debugging other processes, mounting and namespaces,
/// kernel modules and keyrings, kexec, BPF and perf, `userfaultfd` and io_uring. They fail
/// with `EPERM` (`clone3` with `ENOSYS`, so C libraries fall back to `clone`, whose flags the
/// filter can see). A system call of another ABI (32-bit calls on x86-64) fails too.
///
/// The program is written out here rather than compiled with libseccomp: it is a short list,
/// and it keeps the sandbox free of a C dependency the node would have to install.
struct SeccompFilter {
  /// The program for this machine's architecture, or `nil` on one without a table here.
  static var current: [UInt8]? {
    #if arch(x86_64)
      return program(architecture: 0xC000_003E, denied: x86_64Denied, clone: 56, clone3: 435, foreignABIBit: 0x4000_0000)
    #elseif arch(arm64)
      return program(architecture: 0xC000_00B7, denied: aarch64Denied, clone: 220, clone3: 435, foreignABIBit: nil)
    #else
      return nil
    #endif
  }

  /// Denied calls on x86-64, by number (each named beside it).
  static let x86_64Denied: [UInt32] = [
    101,  // ptrace
    103,  // syslog
    155, 161, 165, 166,  // pivot_root, chroot, mount, umount2
    163, 167, 168, 169, 170, 171, 172, 173, 179,  // acct, swapon, swapoff, reboot, sethostname, setdomainname, iopl, ioperm, quotactl
    175, 176, 313,  // init_module, delete_module, finit_module
    246, 320,  // kexec_load, kexec_file_load
    248, 249, 250,  // add_key, request_key, keyctl
    272, 308,  // unshare, setns
    298, 321, 323,  // perf_event_open, bpf, userfaultfd
    303, 304,  // name_to_handle_at, open_by_handle_at
    310, 311, 312,  // process_vm_readv, process_vm_writev, kcmp
    425, 426, 427,  // io_uring_setup, io_uring_enter, io_uring_register
    428, 429, 430, 431, 432, 433, 442,  // open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr
  ]

  /// The same calls in the generic table aarch64 uses.
  static let aarch64Denied: [UInt32] = [
    117, 116,  // ptrace, syslog
    41, 51, 40, 39,  // pivot_root, chroot, mount, umount2
    89, 224, 225, 142, 161, 162, 60,  // acct, swapon, swapoff, reboot, sethostname, setdomainname, quotactl
    105, 106, 273,  // init_module, delete_module, finit_module
    104, 294,  // kexec_load, kexec_file_load
    217, 218, 219,  // add_key, request_key, keyctl
    97, 268,  // unshare, setns
    241, 280, 282,  // perf_event_open, bpf, userfaultfd
    264, 265,  // name_to_handle_at, open_by_handle_at
    270, 271, 272,  // process_vm_readv, process_vm_writev, kcmp
    425, 426, 427,
    428, 429, 430, 431, 432, 433, 442,
  ]

  /// `clone` flags that make namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
  static let namespaceFlags: UInt32 = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000
    | 0x2000_0000 | 0x4000_0000

  private static let allow: UInt32 = 0x7FFF_0000
  private static func errno(_ value: UInt32) -> UInt32 { 0x0005_0000 | value }
  private static let eperm: UInt32 = 1
  private static let enosys: UInt32 = 38

  private struct Instruction {
    var code: UInt16
    var jt: UInt8 = 0
    var jf: UInt8 = 0
    var k: UInt32
  }

  // Classic BPF opcodes.
  private static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
  private static let jumpEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
  private static let jumpGreaterOrEqual: UInt16 = 0x35  // BPF_JMP | BPF_JGE | BPF_K
  private static let jumpSet: UInt16 = 0x45  // BPF_JMP | BPF_JSET | BPF_K
  private static let returnConstant: UInt16 = 0x06  // BPF_RET | BPF_K

  // Offsets in `struct seccomp_data`: nr, arch, then the arguments from 16 (the low word of
  // the first on little-endian machines).
  private static let numberOffset: UInt32 = 0
  private static let architectureOffset: UInt32 = 4
  private static let firstArgumentLowOffset: UInt32 = 16

  static func program(
    architecture: UInt32, denied: [UInt32], clone: UInt32, clone3: UInt32, foreignABIBit: UInt32?
  ) -> [UInt8] {
    var code: [Instruction] = []
    // A call of another architecture: refused.
    code.append(Instruction(code: loadWord, k: architectureOffset))
    code.append(Instruction(code: jumpEqual, jt: 1, jf: 0, k: architecture))
    code.append(Instruction(code: returnConstant, k: errno(enosys)))
    code.append(Instruction(code: loadWord, k: numberOffset))
    if let foreignABIBit {
      code.append(Instruction(code: jumpGreaterOrEqual, jt: 0, jf: 1, k: foreignABIBit))
      code.append(Instruction(code: returnConstant, k: errno(enosys)))
    }
    // Each denied call: `jeq nr → return EPERM`.
    for number in denied {
      code.append(Instruction(code: jumpEqual, jt: 0, jf: 1, k: number))
      code.append(Instruction(code: returnConstant, k: errno(eperm)))
    }
    code.append(Instruction(code: jumpEqual, jt: 0, jf: 1, k: clone3))
    code.append(Instruction(code: returnConstant, k: errno(enosys)))
    // clone with a namespace flag: EPERM; any other clone (threads, fork): allowed.
    code.append(Instruction(code: jumpEqual, jt: 0, jf: 3, k: clone))
    code.append(Instruction(code: loadWord, k: firstArgumentLowOffset))
    code.append(Instruction(code: jumpSet, jt: 0, jf: 1, k: namespaceFlags))
    code.append(Instruction(code: returnConstant, k: errno(eperm)))
    code.append(Instruction(code: returnConstant, k: allow))

    var bytes: [UInt8] = []
    bytes.reserveCapacity(code.count * 8)
    for instruction in code {
      withUnsafeBytes(of: instruction.code.littleEndian) { bytes += $0 }
      bytes += [instruction.jt, instruction.jf]
      withUnsafeBytes(of: instruction.k.littleEndian) { bytes += $0 }
    }
    return bytes
  }
}
