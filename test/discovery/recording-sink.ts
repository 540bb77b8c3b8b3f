/** The test double of the discoverers' {@link Sink} port: keeps every sighting it is given, in order. */
import type { Rows, Sink } from '../../services/discovery/records.ts';
import type { Table } from '../../services/discovery/tables.ts';

/** One emitted sighting. */
export interface Sighting<T extends Table = Table> {
  table: T;
  bk_biz_id: number;
  app_name: string;
  row: Rows[T];
  timeUs: number;
}

export class RecordingSink implements Sink {
  readonly sightings: Sighting[] = [];

  emit<T extends Table>(table: T, bkBizId: number, appName: string, row: Rows[T], timeUs: number): void {
    this.sightings.push({ table, bk_biz_id: bkBizId, app_name: appName, row, timeUs });
  }

  /** The rows of one table, in emission order. */
  rows<T extends Table>(table: T): Rows[T][] {
    return this.sightings.filter((s) => s.table === table).map((s) => s.row as Rows[T]);
  }
}
