/** The store contract against the in-memory adapter. */
import { MemoryStore } from '../../src/store/memory.ts';
import { storeContract } from './contract.ts';

storeContract('memory', async () => {
  const store = new MemoryStore();
  return { store, cleanup: () => store.close() };
});
