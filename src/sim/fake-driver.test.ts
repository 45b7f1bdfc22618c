// The fake driver passes the driver contract that the process driver passes. The contract waits
// in real time, so here the fake runs on the system clock; in the simulator it runs on FakeClock.
import { runDriverContract } from '../agent/drivers/driver.contract.js';
import { systemClock } from '../platform/real-ports.js';
import { FakeDriver, ProcessTable } from './fake-driver.js';

const table = new ProcessTable();
runDriverContract(
  'fake (simulator)',
  () => new FakeDriver({ clock: systemClock, table, node: 'sim-1' }),
  { realProcesses: false },
);
