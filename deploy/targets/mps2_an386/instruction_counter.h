// Instruction counting on QEMU's mps2-an386 with `-icount shift=0`: the SysTick timer (24 bits,
// down-counting, clocked from the processor clock) runs from its largest reload value and its
// interrupt counts the wraps (startup.c), so a 64-bit tick count can be read at any time.
// Under -icount shift=0 QEMU advances virtual time by 1 ns per executed instruction and SysTick
// ticks at the machine's 25 MHz system clock, so one tick is 40 instructions (the budget program
// measures this ratio on a loop of known length instead of trusting it). An instruction count,
// not a cycle count: no wait states, no pipeline or memory timing is modelled.

#ifndef KERAS_IUSP_INSTRUCTION_COUNTER_H_
#define KERAS_IUSP_INSTRUCTION_COUNTER_H_

#include <stdint.h>

extern "C" volatile uint32_t g_systick_wraps;  // startup.c

namespace keras_iusp {

constexpr uint32_t kSysTickPeriod = 1u << 24;

struct SysTickRegisters {
  volatile uint32_t ctrl;   // 0xE000E010
  volatile uint32_t load;   // 0xE000E014
  volatile uint32_t value;  // 0xE000E018
  volatile uint32_t calib;  // 0xE000E01C
};

inline SysTickRegisters* SysTick() { return reinterpret_cast<SysTickRegisters*>(0xE000E010u); }

// Starts SysTick from its largest reload value on the processor clock, wrap interrupt on.
inline void StartTickCounter() {
  SysTick()->ctrl = 0;
  SysTick()->load = kSysTickPeriod - 1;
  SysTick()->value = 0;
  g_systick_wraps = 0;
  SysTick()->ctrl = 0x7u;  // ENABLE | TICKINT | CLKSOURCE (processor clock)
  while (SysTick()->value == 0) {
  }  // the first tick reloads the cleared counter: count from there
  g_systick_wraps = 0;
}

// Ticks since StartTickCounter(), monotonic (re-read if a wrap lands between the two reads).
inline uint64_t ReadTicks() {
  for (;;) {
    const uint32_t wraps = g_systick_wraps;
    const uint32_t value = SysTick()->value;
    if (wraps == g_systick_wraps) {
      return static_cast<uint64_t>(wraps) * kSysTickPeriod + (kSysTickPeriod - 1 - value);
    }
  }
}

}  // namespace keras_iusp

#endif  // KERAS_IUSP_INSTRUCTION_COUNTER_H_
