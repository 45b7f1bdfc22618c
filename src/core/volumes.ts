// Volume operations as the API, the CLI and the agent protocol name them. A volume lives on one
// node (until replicated volumes land) and is known there by name; the controller forwards each
// operation to that node's agent, which runs it on its block engine and answers.
import { z } from 'zod';
import { nameSchema, volumeSizeMiBMax } from './spec.js';

const sizeMiB = z
  .number({ error: `expected a size in MiB between 1 and ${volumeSizeMiBMax}` })
  .int({ error: `expected a size in MiB between 1 and ${volumeSizeMiBMax}` })
  .min(1, { error: `expected a size in MiB between 1 and ${volumeSizeMiBMax}` })
  .max(volumeSizeMiBMax, { error: `expected a size in MiB between 1 and ${volumeSizeMiBMax}` });

export const volumeRequestSchema = z.discriminatedUnion(
  'op',
  [
    z.strictObject({ op: z.literal('list') }),
    /** Empty, or a clone of a golden image (then sizeMiB defaults to the image's size). */
    z
      .strictObject({
        op: z.literal('create'),
        name: nameSchema,
        sizeMiB: sizeMiB.optional(),
        image: nameSchema.optional(),
      })
      .refine((r) => r.sizeMiB !== undefined || r.image !== undefined, {
        error: 'expected sizeMiB, or image to start from a golden image',
        path: ['sizeMiB'],
      }),
    z.strictObject({ op: z.literal('grow'), name: nameSchema, sizeMiB }),
    z.strictObject({ op: z.literal('snapshot'), name: nameSchema, snapshot: nameSchema }),
    /** A new volume over a snapshot of `source` (the frozen layer is shared, not copied). */
    z.strictObject({
      op: z.literal('clone'),
      source: nameSchema,
      snapshot: nameSchema,
      name: nameSchema,
    }),
    z.strictObject({ op: z.literal('delete'), name: nameSchema }),
    z.strictObject({ op: z.literal('delete-snapshot'), name: nameSchema, snapshot: nameSchema }),
  ],
  { error: 'expected op list, create, grow, snapshot, clone, delete or delete-snapshot' },
);
export type VolumeRequest = z.infer<typeof volumeRequestSchema>;

export const volumeInfoSchema = z.object({
  name: z.string(),
  node: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  /** Bytes the volume's own writable layer holds on disk (shared layers are not counted). */
  allocatedBytes: z.number().int().nonnegative(),
  snapshots: z.array(z.string()),
  /** The volume and snapshot this one was cloned from, or the golden image it starts from. */
  origin: z.string().optional(),
  /** Whether an instance has it attached now. */
  attached: z.boolean(),
});
export type VolumeInfo = z.infer<typeof volumeInfoSchema>;

/** What an agent answers: the volumes after the operation (for list, all of them). */
export const volumeResultSchema = z.object({ volumes: z.array(volumeInfoSchema).max(100_000) });
export type VolumeResult = z.infer<typeof volumeResultSchema>;

/** The agent side: runs one operation on the node's block engine. */
export interface VolumeService {
  execute(request: VolumeRequest): Promise<VolumeResult>;
}
