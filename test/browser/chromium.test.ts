/** A missing Chromium is a failure that says how to install one, never a skip. */
import { afterEach, describe, expect, it } from 'vitest';
import { chromiumPath } from './chromium.ts';

const saved = process.env.CHROMIUM_PATH;
afterEach(() => {
  if (saved === undefined) delete process.env.CHROMIUM_PATH;
  else process.env.CHROMIUM_PATH = saved;
});

describe('finding Chromium', () => {
  it('names the apt-get command when no Chromium is installed', () => {
    delete process.env.CHROMIUM_PATH;
    expect(() => chromiumPath(['/nonexistent/chromium-headless-shell'])).toThrow(
      /no headless Chromium found \(looked for \/nonexistent\/chromium-headless-shell\).*apt-get install -y chromium-headless-shell.*CHROMIUM_PATH/,
    );
  });

  it('rejects a CHROMIUM_PATH that does not exist, naming it', () => {
    process.env.CHROMIUM_PATH = '/nonexistent/chrome';
    expect(() => chromiumPath()).toThrow("CHROMIUM_PATH is set to '/nonexistent/chrome', which does not exist");
  });
});
