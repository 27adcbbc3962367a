import { describe, expect, it } from 'vitest';
import { shouldPromote } from './promote.js';

describe('shouldPromote', () => {
  it('promotes on a strictly better AUC or when nothing is active', () => {
    const candidate = { version: 'c', auc: 0.7 };
    expect(shouldPromote({ candidate, active: null })).toBe(true);
    expect(shouldPromote({ candidate, active: { version: 'a', auc: 0.69 } })).toBe(true);
    expect(shouldPromote({ candidate, active: { version: 'a', auc: 0.7 } })).toBe(false);
    expect(shouldPromote({ candidate, active: { version: 'a', auc: 0.8 } })).toBe(false);
  });
});
