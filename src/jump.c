/*
 * jump: see jump.h. The target text is hostile: $SSH_ORIGINAL_COMMAND is
 * whatever the ssh client asked to run (a shell line, "sftp", an scp
 * command, megabytes), so it is parsed by the CONNECT authority parser and
 * nothing else, and never run. The login name comes from the user
 * database by uid, not from $USER or $LOGNAME, which a user's environment
 * can set.
 */
#include "jump.h"

#include "log.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *jump_user(const struct options *options, const struct jump_login *login)
{
	if (options->jump_user != NULL)
		return options->jump_user;
	return login->name[0] != '\0' ? login->name : NULL;
}

/* What the record and the person's line name before the target is parsed: the text as given, escaped where written. */
static const char *target_text(const struct tunnel *tunnel)
{
	const char *asked = getenv("SSH_ORIGINAL_COMMAND");

	return tunnel->options->jump_target != NULL ? tunnel->options->jump_target : asked != NULL ? asked : "-";
}

void jump_prepare(struct tunnel *tunnel, struct jump_login *login)
{
	tunnel->client.protocol = PROTOCOL_JUMP;
	log_leave_stderr_to_person();
	const struct passwd *entry = getpwuid(getuid());
	login->name[0] = '\0';
	if (entry != NULL && entry->pw_name != NULL && strlen(entry->pw_name) < sizeof(login->name))
		memcpy(login->name, entry->pw_name, strlen(entry->pw_name) + 1);
	if (isatty(tunnel->client.in) || isatty(tunnel->client.out))
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST,
			      "a terminal is no byte stream: run ssh with -T (or give this login no pty: PermitTTY no, "
			      "or restrict in authorized_keys)",
			      NULL, NULL, target_text(tunnel), jump_user(tunnel->options, login));
}

const struct request *jump_request(struct tunnel *tunnel, struct request *request, const struct jump_login *login,
				   const char **user)
{
	const char *fixed = tunnel->options->jump_target;
	const char *asked = getenv("SSH_ORIGINAL_COMMAND");
	const char *target = fixed != NULL ? fixed : asked;

	*user = jump_user(tunnel->options, login);
	if (fixed != NULL && asked != NULL && strcmp(asked, fixed) != 0)
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST,
			      "this login's forced command names its target: run ssh with no command, or with that target",
			      NULL, NULL, asked, *user);
	if (target == NULL || target[0] == '\0')
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST,
			      "no target: name it as ssh's command, HOST:PORT (ssh -T bastion db1.internal:22)", NULL, NULL,
			      "-", *user);
	if (request_parse_authority(target, strlen(target), request) < 0) {
		static char why[160];
		(void)snprintf(why, sizeof(why), "not a target, HOST:PORT: %s", request->why);
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST, why, NULL, NULL, request->authority, *user);
	}
	return request;
}

int jump_exit_status(enum failure failure)
{
	switch (failure) {
	case FAILURE_NONE:
		return EXIT_SUCCESS;
	case FAILURE_PORT_DENIED:
	case FAILURE_HOST_DENIED:
	case FAILURE_DESTINATION_DENIED:
	case FAILURE_RULE_DENIED:
	case FAILURE_AUTH_REQUIRED:
		return 1;
	case FAILURE_BAD_REQUEST:
	case FAILURE_METHOD_NOT_ALLOWED:
	case FAILURE_VERSION_NOT_SUPPORTED:
	case FAILURE_HEADER_TIMEOUT:
	case FAILURE_HEAD_TOO_LARGE:
	case FAILURE_MISCONFIGURED:
		return 2;
	case FAILURE_DNS_ERROR:
	case FAILURE_CONNECTION_REFUSED:
	case FAILURE_UNROUTABLE:
	case FAILURE_HOST_UNREACHABLE:
	case FAILURE_DESTINATION_UNAVAILABLE:
	case FAILURE_PARENT_REFUSED:
	case FAILURE_PARENT_BROKEN:
		return 3;
	case FAILURE_DNS_TIMEOUT:
	case FAILURE_CONNECT_TIMEOUT:
		return 4;
	case FAILURE_COUNT:
		break;
	}
	return 2;
}
