/*
 * consumer.c - a user's first program, built against an installed Ekiden (see
 * run.sh): the version, an error message, and one future run to completion.
 */
#include <ekiden.h>

#include <stdio.h>
#include <string.h>

static int answer = 42;

static int poll_answer(void *state, ek_cx *cx, void **out)
{
    (void)cx;
    *out = state;
    return EK_OK;
}

static void drop_nothing(void *state)
{
    (void)state;
}

int main(void)
{
    if (ek_version() != EK_VERSION_HEX) {
        fprintf(stderr, "consumer: header %#x but library %#x\n", EK_VERSION_HEX, ek_version());
        return 1;
    }
    if (strcmp(ek_err_name(EK_ECLOSED), "ECLOSED") != 0 || ek_strerror(EK_ECLOSED)[0] == '\0') {
        fprintf(stderr, "consumer: bad error table entry for EK_ECLOSED\n");
        return 1;
    }

    ek_runtime *rt = NULL;
    int rc = ek_runtime_new(NULL, &rt);
    if (rc != EK_OK) {
        fprintf(stderr, "consumer: ek_runtime_new: %s\n", ek_strerror(rc));
        return 1;
    }
    ek_future *f = NULL;
    void *out = NULL;
    rc = ek_future_new(poll_answer, drop_nothing, &answer, &f);
    if (rc == EK_OK) rc = ek_block_on(rt, f, &out);
    ek_runtime_free(rt);
    if (rc != EK_OK || out != &answer) {
        fprintf(stderr, "consumer: ek_block_on: %s\n", ek_strerror(rc));
        return 1;
    }
    printf("consumer: ekiden %s, EK_ECLOSED is \"%s\", block_on gave %d\n", ek_version_string(),
           ek_strerror(EK_ECLOSED), *(int *)out);
    return 0;
}
