/*
 * The seccomp program src/sandbox.c builds, as text: "pid PID", then one
 * "code jt jf k" line per instruction; with "bind", the program of a
 * configuration that names an outgoing address. With "forker", the
 * forker's program, a line "stacked", and the one each tunnel it forks
 * stacks on it (sandbox_tighten_forked), both for this pid; "forker-bind"
 * as "bind". With "numbers", the calls
 * tests/peers/seccomp-verdicts.py judges by: the allow-list's, and the C
 * library's numbers of those allowed by their arguments. Built by
 * tests/sandbox.bats with src/sandbox.c included, to read its filter as
 * the kernel gets it.
 */
/* SANDBOX_C: the src/sandbox.c of the tunneld under test (-DSANDBOX_C='"PATH"'). */
#include SANDBOX_C

int main(int argc, char **argv)
{
	struct sock_filter filter[FILTER_MAX];

	if (argc > 1 && strcmp(argv[1], "numbers") == 0) {
		for (size_t i = 0; i < CALLS; i++)
			printf("allowed:%zu %d\n", i, allowed_calls[i]);
		printf("bind %d\nioctl %d\nrt_sigqueueinfo %d\ntgkill %d\nseccomp %d\nclone3 %d\nclone %d\nsocket %d\n",
		       SYS_bind, SYS_ioctl, SYS_rt_sigqueueinfo, SYS_tgkill, SYS_seccomp, SYS_clone3, SYS_clone, SYS_socket);
		return 0;
	}
	const char *mode = argc > 1 ? argv[1] : "";
	bool forker = strncmp(mode, "forker", 6) == 0;
	size_t n = build_filter(filter, strstr(mode, "bind") != NULL, forker);
	printf("pid %d\n", (int)getpid());
	for (size_t i = 0; i < n; i++)
		printf("%u %u %u %u\n", filter[i].code, filter[i].jt, filter[i].jf, filter[i].k);
	if (forker) {
		n = forked_filter(filter);
		printf("stacked\n");
		for (size_t i = 0; i < n; i++)
			printf("%u %u %u %u\n", filter[i].code, filter[i].jt, filter[i].jf, filter[i].k);
	}
	return 0;
}
