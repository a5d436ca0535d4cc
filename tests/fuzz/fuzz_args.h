/*
 * libFuzzer options a target needs whatever its caller passes (tests/run
 * gives every target the same ones): appended to argv in
 * LLVMFuzzerInitialize, which libFuzzer calls before it parses the flags;
 * the last of a flag given twice wins.
 */
#ifndef SLUICE_FUZZ_ARGS_H
#define SLUICE_FUZZ_ARGS_H

#define FUZZ_ARGS_MAX 256

static inline void fuzz_args_append(int *argc, char ***argv, char *const *add, int n_add)
{
	static char *args[FUZZ_ARGS_MAX];
	int n = 0;

	for (int i = 0; i < *argc && n < FUZZ_ARGS_MAX - 1 - n_add; i++)
		args[n++] = (*argv)[i];
	for (int i = 0; i < n_add; i++)
		args[n++] = add[i];
	args[n] = 0;
	*argc = n;
	*argv = args;
}

#endif
