import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure logic, no peers, fast) and `e2e` (real Synapse / ergo / fake Discord,
// started by test/harness/e2e.sh, which passes their addresses in TRESTLE_E2E_* variables).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          setupFiles: ['test/unit/setup.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
