// gradcheck and gradgradcheck themselves: they pass correct rules, catch wrong ones in
// both modes, and say where and by how much.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { leaf, mt } from '../helpers.js';

test('the exported rule table is frozen (tests perturb a rule with withGradRuleOverride)', () => {
  assert.equal(Object.isFrozen(mt.gradRules), true);
  assert.throws(() => { (mt.gradRules as unknown as Record<string, unknown>).tanh = () => []; }, TypeError);
});

describe('gradcheck', () => {
  test('defaults are PyTorch\'s and a correct rule passes in both modes', () => {
    const x = leaf([0.5, -1, 2, 1.5, -0.25, 3], [2, 3]);
    assert.equal(mt.gradcheck((t) => t.tanh().mul(t.exp()), [x]), true);
    assert.equal(mt.gradcheck((t) => t.tanh().mul(t.exp()), [x], { fast: true }), true);
  });

  test('a 1% error in a rule fails slow mode, naming output, input, multi-index and both values', () => {
    mt.withGradRuleOverride('tanh', (dy, c) => [dy.mul(mt.sub(1, c.output.square())).mul(1.01)], () => {
      const x = leaf([0.5, -1, 2, 1.5, -0.25, 3], [2, 3]);
      const y = leaf([1, 2, 3], [3]);
      assert.throws(() => mt.gradcheck((a, b) => [a.add(b), a.add(b).tanh()], [x, y]), (e: Error) => {
        assert.equal(e.name, 'GradcheckError');
        assert.match(e.message, /Jacobian mismatch for output 1 with respect to input 0/);
        assert.match(e.message, /worst entry d output\[\d, \d\] \/ d input\[\d, \d\]/);
        assert.match(e.message, /analytical -?[\d.e-]+, numerical -?[\d.e-]+/);
        assert.match(e.message, /output shape \[2, 3\], input shape \[2, 3\]/);
        return true;
      });
    });
  });

  test('fast mode (vᵀJu) catches the same error and then reports the full-Jacobian entry', () => {
    mt.withGradRuleOverride('exp', (dy, c) => [dy.mul(c.output).mul(1.02)], () => {
      const x = leaf([0.5, -1, 2], [3]);
      assert.throws(() => mt.gradcheck((t) => t.exp(), [x], { fast: true }), /fast-mode mismatch[\s\S]*Jacobian mismatch for output 0 with respect to input 0/);
    });
  });

  test('raiseException: false returns false instead of throwing', () => {
    mt.withGradRuleOverride('sigmoid', (dy) => [dy], () => {
      assert.equal(mt.gradcheck((t) => t.sigmoid(), [leaf([0.3], [1])], { raiseException: false }), false);
    });
  });

  test('inputs must be float64 and at least one must require grad', () => {
    const f32 = mt.tensor([1, 2], { requiresGrad: true });
    assert.throws(() => mt.gradcheck((t) => t.exp(), [f32]), /inputs\[0\] requires grad but is float32; .*float64/);
    assert.throws(() => mt.gradcheck((t) => t.exp(), [mt.tensor([1], { dtype: 'float64' })]), /at least one input must require grad/);
  });
});

describe('gradgradcheck', () => {
  test('passes for rules written with differentiable ops', () => {
    assert.equal(mt.gradgradcheck((a, b) => a.mul(b).sigmoid().matmul(b.transpose()), [leaf([1, 2, -1, 0.5], [2, 2]), leaf([0.3, -0.7, 1.1, 0.2], [2, 2])]), true);
  });

  test('catches a rule whose backward is not differentiable (a detached saved output)', () => {
    mt.withGradRuleOverride('tanh', (dy, c) => [dy.mul(mt.sub(1, c.output.detach().square()))], () => {
      const x = leaf([0.5, -1, 2], [3]);
      assert.equal(mt.gradcheck((t) => t.tanh(), [x]), true);
      assert.throws(() => mt.gradgradcheck((t) => t.tanh(), [x]), /Jacobian mismatch for output 0 with respect to input 0/);
    });
  });

  test('accepts explicit gradOutputs', () => {
    const x = leaf([0.5, -1, 2], [3]);
    const v = mt.tensor([1, 0, -2], { dtype: 'float64' });
    assert.equal(mt.gradgradcheck((t) => t.pow(3), [x], { gradOutputs: [v] }), true);
  });
});
