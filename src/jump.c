/*
 * jump: see jump.h. The target text is hostile: $SSH_ORIGINAL_COMMAND is
 * whatever the ssh client asked to run (a shell line, "sftp", an scp
 * command, megabytes), so it is parsed by the CONNECT authority parser and
 * nothing else, and never run; where it is shown before it parses, it is
 * shown as that parser keeps it for the record (no userinfo, 262 bytes at
 * most), escaped. The login name comes from the user database by uid, not
 * from $USER or $LOGNAME, which a login's environment can set; and a
 * session whose user or source cannot be named is refused, not judged as
 * nobody's from nowhere, which rules that deny a user or a network would
 * let through.
 */
#include "jump.h"

#include "client.h"
#include "log.h"
#include "route.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MISCONFIGURED_WHY "the proxy's configuration has an error; its log says which"

void jump_prepare(struct tunnel *tunnel, struct jump_session *session)
{
	const char *ssh_client = getenv("SSH_CLIENT");
	char source[INET6_ADDRSTRLEN + 16];
	uint8_t address[16];
	int family;

	tunnel->client.protocol = PROTOCOL_JUMP;
	log_leave_stderr_to_person();
	const struct passwd *entry = getpwuid(getuid());
	session->login[0] = '\0';
	if (entry != NULL && entry->pw_name != NULL && strlen(entry->pw_name) < sizeof(session->login))
		memcpy(session->login, entry->pw_name, strlen(entry->pw_name) + 1);
	session->on_terminal = isatty(tunnel->client.in) || isatty(tunnel->client.out);
	session->unreadable_source =
		ssh_client != NULL && (!client_address_from_ssh(ssh_client, source, sizeof(source)) ||
				       !parse_source(source, &family, address));
}

/* text as the record and the person's line may show it: the parser's copy, whatever its verdict. */
static const char *shown(const char *text)
{
	static struct request scratch;

	if (text == NULL || text[0] == '\0')
		return "-";
	(void)request_parse_authority(text, strlen(text), &scratch);
	return scratch.authority[0] != '\0' ? scratch.authority : "-";
}

const struct request *jump_request(struct tunnel *tunnel, struct request *request,
				   const struct jump_session *session, const char **user)
{
	const char *fixed = tunnel->options->jump_target;
	const char *asked = getenv("SSH_ORIGINAL_COMMAND");
	const char *target = fixed != NULL ? fixed : asked;

	*user = tunnel->options->jump_user != NULL ? tunnel->options->jump_user
		: session->login[0] != '\0'       ? session->login
						  : NULL;
	if (*user == NULL) {
		static char reason[96];
		(void)snprintf(reason, sizeof(reason), "uid %u has no name in the user database: give --user",
			       (unsigned)getuid());
		tunnel_refuse(tunnel, FAILURE_MISCONFIGURED, MISCONFIGURED_WHY, reason, NULL, shown(target), NULL);
	}
	if (session->unreadable_source)
		tunnel_refuse(tunnel, FAILURE_MISCONFIGURED, MISCONFIGURED_WHY,
			      "$SSH_CLIENT names no address: the rules could not judge where the session comes from", NULL,
			      shown(target), *user);
	if (session->on_terminal)
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST,
			      "a terminal is no byte stream: run ssh with -T (or give this login no pty: PermitTTY no, "
			      "or restrict in authorized_keys)",
			      NULL, NULL, shown(target), *user);
	if (fixed != NULL && asked != NULL && strcmp(asked, fixed) != 0)
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST,
			      "this login's forced command names its target: run ssh with no command, or with that target",
			      NULL, NULL, shown(asked), *user);
	if (target == NULL || target[0] == '\0')
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST,
			      "no target: name it as ssh's command, HOST:PORT (ssh -T bastion db1.internal:22)", NULL, NULL,
			      "-", *user);
	if (request_parse_authority(target, strlen(target), request) < 0) {
		static char why[160];
		(void)snprintf(why, sizeof(why), "not a target, HOST:PORT: %s", request->why);
		tunnel_refuse(tunnel, FAILURE_BAD_REQUEST, why, NULL, NULL, shown(target), *user);
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
	case FAILURE_OUTGOING_UNUSABLE:
		return 2;
	case FAILURE_DNS_ERROR:
	case FAILURE_CONNECTION_REFUSED:
	case FAILURE_UNROUTABLE:
	case FAILURE_HOST_UNREACHABLE:
	case FAILURE_DESTINATION_UNAVAILABLE:
	case FAILURE_PARENT_REFUSED:
	case FAILURE_PARENT_BROKEN:
	case FAILURE_NO_OUTGOING:
		return 3;
	case FAILURE_DNS_TIMEOUT:
	case FAILURE_CONNECT_TIMEOUT:
		return 4;
	case FAILURE_COUNT:
		break;
	}
	return 2;
}
