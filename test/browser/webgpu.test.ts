/** webgpu in headless Chromium against the float64 reference (see backend-suite.ts). */
import { describeBackendInChromium } from './backend-suite.ts';

describeBackendInChromium('webgpu');
