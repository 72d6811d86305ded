/** median and quantile: one statistics module for the reports and the bench. */
import { median, quantile } from '../../src/report/stats.js';

describe('quantile', () => {
  it('interpolates linearly between order statistics, in any input order', () => {
    expect(quantile([4, 1, 3, 2], 0)).toBe(1);
    expect(quantile([4, 1, 3, 2], 1)).toBe(4);
    expect(quantile([4, 1, 3, 2], 0.25)).toBe(1.75);
    expect(quantile([10, 20], 0.75)).toBe(17.5);
  });

  it('gives the median at q = 0.5, and NaN for no values', () => {
    for (const xs of [[3], [5, 1, 4], [2, 9, 4, 7], [1.5, -2, 8, 0, 3, 3]]) expect(quantile(xs, 0.5)).toBe(median(xs));
    expect(quantile([], 0.5)).toBeNaN();
    expect(median([])).toBeNaN();
  });
});
