// Runs before each unit test file (vitest.config.ts setupFiles): what the file made in /tmp goes with it.
import { afterAll } from 'vitest';
import { removeTempDirs } from './temp.js';

afterAll(removeTempDirs);
