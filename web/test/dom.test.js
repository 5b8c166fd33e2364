// @ts-check
/* Unit tests of web/dom.js's formatters, in node. */
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { makeFormatters } = require('../dom.js');

test('a short date of another year says its year; one of this year does not', () => {
  const fmt = makeFormatters('en-GB');
  const now = new Date();
  const thisYear = new Date(now.getFullYear(), 0, 15, 9, 30).getTime();
  const twoYearsAgo = new Date(now.getFullYear() - 2, 10, 30, 19, 6).getTime();
  assert.ok(!fmt.short(thisYear).includes(String(now.getFullYear())), fmt.short(thisYear));
  assert.ok(fmt.short(thisYear).includes('09:30'), fmt.short(thisYear));
  assert.ok(fmt.short(twoYearsAgo).includes(String(now.getFullYear() - 2)), fmt.short(twoYearsAgo));
});
