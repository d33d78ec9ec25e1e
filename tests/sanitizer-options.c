/*
 * Linked into the ASan+UBSan test build only. Activators (xinetd, sshd, a
 * systemd manager) drop the environment, so the options that make every
 * report fail the suite are compiled in: reports go to files under
 * SANITIZER_LOG_DIR, which make check requires to stay empty.
 */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
const char *__lsan_default_options(void);

#define OPTIONS "log_path=" SANITIZER_LOG_DIR "/report:print_stacktrace=1"

const char *__asan_default_options(void)
{
	return OPTIONS ":detect_leaks=1:abort_on_error=0";
}

const char *__ubsan_default_options(void)
{
	return OPTIONS ":halt_on_error=1";
}

const char *__lsan_default_options(void)
{
	return OPTIONS;
}
