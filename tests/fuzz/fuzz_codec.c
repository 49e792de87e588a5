/*
 * fuzz_codec.c - libFuzzer target: the protocol message codec (shared/core/codec.h) on any
 * bytes, as a replica's /v1/paxos or a participant's prepare receives them.
 *
 * Checked besides memory and undefined behaviour (the sanitizers): a message that decodes is
 * valid, encodes, and decodes again to the same message (one wire form); a batch decodes all
 * or nothing, within its cap.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "msg.h"

#include "fuzz_util.h"

#define NREP 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg m, again, batch[8];
    char err[256], *text = NULL;
    size_t len = 0, n = 0;
    json_t *j;

    memset(&m, 0, sizeof(m));
    if (codec_decode_text((const char *)data, size, NREP, &m, err, sizeof(err)) == TPC_OK) {
        check(msg_validate(&m, NREP, NULL, 0) == TPC_OK);
        check(codec_encode_text(&m, &text, &len) == TPC_OK);
        memset(&again, 0, sizeof(again));
        check(codec_decode_text(text, len, NREP, &again, err, sizeof(err)) == TPC_OK);
        check(memcmp(&m, &again, sizeof(m)) == 0);
        free(text);
    } else {
        check(err[0] != '\0'); /* a refusal says why */
    }
    j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (j) {
        memset(batch, 0, sizeof(batch));
        if (codec_decode_batch(j, NREP, batch, 8, &n, err, sizeof(err)) == TPC_OK) {
            check(n <= 8);
            while (n--)
                check(msg_validate(&batch[n], NREP, NULL, 0) == TPC_OK);
        }
        json_decref(j);
    }
    return 0;
}
