/** Every target of the campaign, in the suite's order. @module */
import type { FuzzTarget } from '../types.ts';
import { ej01tcp, ej01udp } from './ej01.ts';
import { ej02 } from './ej02.ts';
import { ej05 } from './ej05.ts';
import { ej09, ej10 } from './ej09-10.ts';
import { ej11 } from './ej11.ts';
import { ej12master, ej12slave } from './ej12.ts';
import { ej13 } from './ej13.ts';
import { ej14mapper, ej14reducer } from './ej14.ts';
import { ej15 } from './ej15.ts';
import { ej06, ej07, ej08 } from './http.ts';

export const TARGETS: readonly FuzzTarget<any>[] = [ej01tcp, ej01udp, ej02, ej05, ej06, ej07, ej08, ej09, ej10, ej11, ej12master, ej12slave, ej13, ej14reducer, ej14mapper, ej15];

/** The targets `names` select: a target's name (`ej12-slave`) or an exercise (`ej12`: master and slave). */
export function selectTargets(names: readonly string[]): FuzzTarget<any>[] {
  if (names.length === 0) return [...TARGETS];
  const out: FuzzTarget<any>[] = [];
  for (const name of names) {
    const hits = TARGETS.filter((t) => t.name === name || t.name.startsWith(`${name}-`));
    if (hits.length === 0) throw new Error(`no fuzz target ${name} (there are: ${TARGETS.map((t) => t.name).join(', ')})`);
    for (const hit of hits) if (!out.includes(hit)) out.push(hit);
  }
  return out;
}
