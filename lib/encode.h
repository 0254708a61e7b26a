/* encode.h - sentence embeddings on the CPU for a run of sequences: the
 * encoder, the model's pooling and, if asked, L2 normalisation, batch by
 * batch.
 *
 * With several threads and several batches, whole batches go to threads,
 * each with its own activations and running its layers on its own core: no
 * thread waits for another between layers, which is where small batches lose
 * most of their time when every layer is split among threads.  A single
 * batch uses all threads inside its layers. */
#ifndef BP_ENCODE_H
#define BP_ENCODE_H

#include "model.h"

typedef struct encoder encoder;

/* An encoder for m (which must outlive it), batch_size sequences per forward
 * pass, as many batches at once as threads_count() says. */
encoder *encoder_new(const bert_model *m, int batch_size);
void encoder_free(encoder *e);

/* out[n, H] = the embeddings of sequences ids[s * T, s * T + lens[s]) for
 * s < n (lengths 1 to the model's max_positions), unit length when
 * normalize. */
void encoder_run(encoder *e, const int32_t *ids, const int32_t *lens, int64_t n, int T,
                 int normalize, float *out);

#endif
