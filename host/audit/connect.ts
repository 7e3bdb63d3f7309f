// How the audit trail opens PostgreSQL connections (engine thread and writer thread alike).
import postgres, { type Sql } from "postgres";

/**
 * No connection runs postgres.js's array-type query at connect: when the server goes away
 * during that query the driver rejects a promise nobody holds (porsager/postgres#1192), an
 * unhandled rejection that would end the engine during an outage. Reads get the one array
 * column as JSON instead (recordSelectList in chain.ts).
 */
export function connect(dsn: string, max: number, app: string): Sql {
  return postgres(dsn, {
    max,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: () => undefined,
    connection: { application_name: app },
    fetch_types: false,
  });
}
