// Bare-metal start-up for QEMU's mps2-an386 machine (Arm MPS2 FPGA image AN386: a Cortex-M4F).
//
// The core boots from the vector table at address 0: word 0 is the initial stack pointer,
// word 1 the reset handler. The reset handler grants full access to the FPU (CPACR CP10/CP11)
// before any floating-point instruction can run, then enters newlib's rdimon start-up (_start:
// stack and heap from the semihosting HEAPINFO call, .bss cleared, C++ constructors, argv from
// the semihosting command line, main, exit). .data is linked directly in RAM (see
// mps2_an386.ld): QEMU loads every ELF segment where it is linked, and rdimon's start-up does not
// copy .data from flash.
//
// Any fault ends the emulation through semihosting (SYS_EXIT, "run-time error"), so a crash is
// a failed run with exit status 1, never a hang. This file uses no floating point.

#include <stdint.h>

extern uint32_t __stack_top;  // from the linker script: top of RAM
extern void _start(void);     // newlib's crt0 (rdimon-crt0.o)

void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);

__attribute__((noreturn)) static void semihosting_fail(void) {
  // SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown (0x20023): QEMU exits with status 1.
  register uint32_t op __asm__("r0") = 0x18;
  register uint32_t reason __asm__("r1") = 0x20023;
  __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
  for (;;) {
  }
}

void Reset_Handler(void) {
  volatile uint32_t* const cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= (0xFu << 20);  // CP10 and CP11: full access
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  _start();
  semihosting_fail();  // _start does not return
}

void Fault_Handler(void) { semihosting_fail(); }

// SysTick wraps since StartTickCounter() (instruction_counter.h): the counter is 24 bits wide.
volatile uint32_t g_systick_wraps = 0;
void SysTick_Handler(void) { ++g_systick_wraps; }

// Exceptions 1..15 (reset, NMI, faults, SVCall, PendSV, SysTick); no peripheral interrupt is
// enabled by the programs that run here, so the external vectors are not populated.
__attribute__((section(".isr_vector"), used)) void (*const g_vector_table[16])(void) = {
    (void (*)(void))(&__stack_top),
    Reset_Handler,
    Fault_Handler,  // NMI
    Fault_Handler,  // HardFault
    Fault_Handler,  // MemManage
    Fault_Handler,  // BusFault
    Fault_Handler,  // UsageFault
    0, 0, 0, 0,
    Fault_Handler,  // SVCall
    Fault_Handler,  // DebugMonitor
    0,
    Fault_Handler,  // PendSV
    SysTick_Handler,  // counts wraps of the instruction counter
};
