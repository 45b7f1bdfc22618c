// Runs the StateStore contract against the in-memory backend.
import { MemoryStore } from './memory.js';
import { runStoreContract } from './store.contract.js';

runStoreContract('memory', (clock, options) => new MemoryStore({ clock, ...options }));
