#include "clone_vm.h"

#if defined(MANIFOLD_HAVE_CLONE_VM)
// rdi = args, rsi = size, rdx = fn, rcx = arg. fn and arg are kept in r12/r13, which the syscall
// preserves and the child inherits; the kernel starts the child with rsp = stack + stack_size
// (16-byte aligned by the caller), so `call` gives fn the alignment the ABI expects.
__asm__(
    ".text\n"
    ".globl manifold_clone3_vm\n"
    ".type manifold_clone3_vm,@function\n"
    "manifold_clone3_vm:\n"
    "  push %r12\n"
    "  push %r13\n"
    "  mov %rdx, %r12\n"
    "  mov %rcx, %r13\n"
    "  mov $435, %eax\n"  // SYS_clone3
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  xor %ebp, %ebp\n"  // child: outermost frame of its own stack
    "  mov %r13, %rdi\n"
    "  call *%r12\n"
    "  mov $127, %edi\n"  // fn returned: it must not, but never fall into the parent's code
    "  mov $60, %eax\n"   // SYS_exit
    "  syscall\n"
    "  hlt\n"
    "1:\n"
    "  pop %r13\n"
    "  pop %r12\n"
    "  ret\n"
    ".size manifold_clone3_vm, .-manifold_clone3_vm\n");
#endif
