# The install documentation cannot drift from what the repository builds:
# the shell and nginx blocks of README.md, docs/deploy.md,
# docs/debian-from-scratch.md, docs/sdk.md, docs/cli.md, docs/testing.md,
# examples/README.md and nginx-conf-examples/README.md are extracted and checked as far as one
# machine can check them.  nginx blocks: the conf.d file shown is the one
# in nginx-conf-examples/debian/ and passes nginx -t in Debian's layout
# with the built module.  Shell blocks: every make target exists, every
# amonitor subcommand and option is known to build/amonitor, the example
# SDK knows its options, repository paths exist, other commands are on
# PATH (or are system tools listed below); root and sudo work alike
# ($SUDO), systemctl lines say what to do without systemd, and every
# panel command against the installed configuration passes its token.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::ConfCheck qw(nginx_t_debian);

my $ROOT = "$FindBin::Bin/..";
my @DOCS = qw(README.md docs/deploy.md docs/debian-from-scratch.md
    docs/sdk.md docs/cli.md docs/testing.md docs/directives.md
    examples/README.md
    nginx-conf-examples/README.md);

# where panel commands go to the installed configuration (its token)
my %TOKEN_FROM = (
    'README.md'                  => qr/^## Using the module/,
    'docs/deploy.md'             => qr/^# /,
    'docs/debian-from-scratch.md' => qr/^## 4\./,
);

# system tools a machine running the tests may lack (no systemd or sudo in
# a container); the rest must be on PATH
my %SYSTEM = map { $_ => 1 } qw(sudo systemctl journalctl apt apt-get
    apt-mark dpkg dpkg-buildpackage debuild lintian ldconfig);

# shell words that are no commands
my %SKIP = map { $_ => 1 } qw(cd for do done if then fi else while export
    [ test true false : echo);

my $t = Test::AMonitor->new;
my $MODULE = $t->module_path;
my $CLI = "$ROOT/build/amonitor";
my $SDK = "$ROOT/build/sdk/amonitor-sdk-example";

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or die "$f: $!";
    local $/;
    return <$fh>;
}

sub strip_comments {
    my ($text) = @_;
    return join '', map { "$_\n" } grep { /\S/ && !/^\s*#/ }
        split /\n/, $text;
}

my $LOAD = slurp("$ROOT/nginx-conf-examples/debian/modules-enabled/"
    . '50-mod-http-amonitor.conf');
my $CONFD = slurp("$ROOT/nginx-conf-examples/debian/conf.d/amonitor.conf");
my ($TOKEN) = $CONFD =~ /amonitor_panel_token\s+(\S+);/;
ok(defined $TOKEN, "the installed configuration has a panel token ($TOKEN)");

# (lang, text, line number, text after the block, heading before it)
sub blocks {
    my ($doc) = @_;
    my (@b, $lang, $buf, $start, $heading);
    my @lines = split /\n/, slurp("$ROOT/$doc");
    $heading = '';
    for my $i (0 .. $#lines) {
        my $l = $lines[$i];
        if (defined $lang) {
            if ($l =~ /^```\s*$/) {
                my $after = join "\n", @lines[$i + 1 .. min($i + 4, $#lines)];
                push @b, [$lang, $buf, $start, $after, $heading];
                undef $lang;
            }
            else {
                $buf .= "$l\n";
            }
            next;
        }
        $heading = $l if $l =~ /^#+ /;
        if ($l =~ /^```(\w*)\s*$/) {
            ($lang, $buf, $start) = ($1, '', $i + 1);
        }
    }
    return @b;
}

sub min { $_[0] < $_[1] ? $_[0] : $_[1] }

# the commands of a shell block: continuations joined, heredoc bodies and
# comments dropped, split at ; && || | and &
sub commands {
    my ($text) = @_;
    my (@cmds, $heredoc);
    $text =~ s/\\\n\s*/ /g;
    for my $line (split /\n/, $text) {
        if (defined $heredoc) {
            undef $heredoc if $line eq $heredoc;
            next;
        }
        $heredoc = $1 if $line =~ /<<-?'?(\w+)'?/;
        $line =~ s/(^|\s)#.*//;
        for my $c (split /\s*(?:;|&&|\|\||\||&)\s*/, $line) {
            $c =~ s/^\s+|\s+$//g;
            push @cmds, $c if length $c;
        }
    }
    return @cmds;
}

my %help;
sub help_of {
    my ($what) = @_;
    $help{$what} //= $what eq 'sdk' ? `"$SDK" --help 2>&1`
        : `"$CLI" $what --help 2>&1`;
    return $help{$what};
}

my %make_ok;
sub make_target_ok {
    my ($target) = @_;
    $make_ok{$target} //= do {
        my $out = `cd "$ROOT" && make -n --no-print-directory "$target" 2>&1`;
        $out =~ /No rule to make target/ ? 0 : 1;
    };
    return $make_ok{$target};
}

# check one command; returns a list of problems
sub check_command {
    my ($doc, $cmd, $need_token) = @_;
    my @w = grep { length } split /\s+/, $cmd;
    my @p;
    shift @w while @w && ($w[0] =~ /^\w+=/ || $w[0] =~ /^\$?SUDO$/
        || $w[0] eq 'sudo' || $w[0] eq 'nohup' || $w[0] eq 'env');
    return () unless @w;
    my $c = $w[0];
    return () if $SKIP{$c} || $c =~ /^[\[\$"'({}]/;

    if ($c eq 'make') {
        for my $arg (@w[1 .. $#w]) {
            next if $arg =~ /^-|=/;
            push @p, "make: no target \"$arg\"" unless make_target_ok($arg);
        }
        return @p;
    }
    if ($c =~ m{^(?:build/)?amonitor$}) {
        return () if @w == 2 && $w[1] eq '--version';
        my $sub = $w[1] // '';
        my $h = help_of($sub);
        return ("amonitor: unknown command \"$sub\"")
            if $h =~ /unknown command/ || $sub eq '';
        for my $o (grep { /^--/ } @w[2 .. $#w]) {
            (my $name = $o) =~ s/=.*//;
            push @p, "amonitor $sub: unknown option $name"
                unless $h =~ /\Q$name\E\b/;
        }
        if ($need_token && $sub =~ /^(?:send|watch|sim|dedupe-check|bench)$/
            && $cmd !~ /--token \Q$TOKEN\E\b/) {
            push @p, "amonitor $sub without --token $TOKEN against the "
                . 'installed configuration';
        }
        return @p;
    }
    if ($c =~ m{(?:^|/)amonitor-sdk-example$}) {
        my $h = help_of('sdk');
        for my $o (grep { /^--/ } @w[1 .. $#w]) {
            push @p, "amonitor-sdk-example: unknown option $o"
                unless $h =~ /\Q$o\E\b/;
        }
        return @p;
    }
    if ($c eq 'install') {
        for my $arg (@w[1 .. $#w]) {
            next unless $arg =~ m{^(?:nginx-conf-examples|examples|docs|sdk|tools)/};
            push @p, "install: $arg is not in the repository"
                unless -e "$ROOT/$arg";
        }
        return @p;
    }
    if ($c =~ m{^\.?/?(?:examples|scripts|t)/}) {
        (my $f = $c) =~ s{^\./}{};
        return -e "$ROOT/$f" ? () : ("$c is not in the repository");
    }
    if ($c =~ m{^build/}) {
        return ();    # built by the make targets checked above
    }
    return () if $SYSTEM{$c};
    my $found = `command -v "$c" 2>/dev/null`;
    return $found ? () : ("command \"$c\" not found");
}

for my $doc (@DOCS) {
    my @b = blocks($doc);
    ok(@b, "$doc has code blocks (" . scalar(@b) . ')');
    my $from = $TOKEN_FROM{$doc};

    # token requirement: from the heading that starts it
    my $text = slurp("$ROOT/$doc");
    my $token_line = 0;
    if ($from) {
        my @l = split /\n/, $text;
        for my $i (0 .. $#l) {
            if ($l[$i] =~ $from) { $token_line = $i + 1; last }
        }
        $token_line ||= 1e9;
    }

    for my $b (@b) {
        my ($lang, $body, $line, $after) = @$b;
        my $where = "$doc:$line";

        if ($lang eq 'nginx') {
            if ($body =~ /^\s*load_module\b/m && $body !~ /\bhttp\s*\{/) {
                is($body, $LOAD, "$where: the load_module line is the "
                    . 'modules-enabled file');
            }
            elsif ($body =~ /\bhttp\s*\{/) {
                fail("$where: a whole nginx.conf in the docs; show the "
                    . 'Debian drop-ins or name a file of nginx-conf-examples/');
            }
            else {
                is(strip_comments($body), strip_comments($CONFD),
                    "$where: the conf.d file "
                    . 'is nginx-conf-examples/debian/conf.d/amonitor.conf');
                my ($rc, $out) = nginx_t_debian(binary => $t->binary,
                    module => $MODULE, files => {
                        'modules-enabled/50-mod-http-amonitor.conf' => $LOAD,
                        'conf.d/amonitor.conf' => $body,
                    });
                is($rc, 0, "$where: passes nginx -t in Debian's layout")
                    or diag($out);
            }
            next;
        }

        next unless $lang =~ /^(?:bash|sh|shell)$/;
        my @problems;
        my $need_token = $from && $line > $token_line;
        push @problems, check_command($doc, $_, $need_token)
            for commands($body);
        if ($body =~ /\$SUDO/ && $body !~ /^SUDO=; \[ "\$\(id -u\)" = 0 \] \|\| SUDO=sudo$/m) {
            push @problems, '$SUDO used without the line that sets it';
        }
        push @problems, 'a plain "sudo": root without sudo cannot run it'
            if $body =~ /^\s*sudo\s/m;
        for my $l (split /\n/, $body) {
            next unless $l =~ /^\s*\$SUDO systemctl|^\s*systemctl/;
            next if $l =~ /# without systemd: \S/;
            next if $after =~ /without systemd/i;
            push @problems, "systemctl without the command for no systemd: $l";
        }
        is(join("\n", @problems), '', "$where: the shell block checks out");
    }
}

# every option of a command's synopsis in cli.md is in its --help, and
# every option its --help names is in the synopsis
{
    my $cli = slurp("$ROOT/docs/cli.md");
    my $n = 0;
    while ($cli =~ /^```\n(amonitor (\S+) .*?)^```/msg) {
        my ($syn, $sub) = ($1, $2);
        # synopses only (not sample output), of a command
        next unless $syn =~ /^amonitor [a-z-]+ +[\[-]/ && $sub =~ /^[a-z]/;
        $n++;
        my $h = help_of($sub);
        # the common options are listed once, after the commands
        my ($common) = $h =~ /^common options:\n(.*)/ms;
        my %common = map { $_ => 1 } ($common // '') =~ /^\s+(--[a-z-]+)/mg;
        my %doc = map { $_ => 1 } grep { !$common{$_} }
            $syn =~ /(--[a-z][a-z-]*)/g;
        my ($line) = $h =~ /^\s+\Q$sub\E\s+.*\n\s+(.*)$/m;
        $line //= '';
        my %help = map { $_ => 1 } grep { !$common{$_} }
            $line =~ /(--[a-z][a-z-]*)/g;
        is(join(' ', sort grep { !$help{$_} } keys %doc), '',
            "cli.md's synopsis of $sub: every option is in its --help");
        is(join(' ', sort grep { !$doc{$_} } keys %help), '',
            "$sub --help: every option is in cli.md's synopsis");
    }
    ok($n >= 4, "cli.md has the synopses of the commands ($n)");
}

# the commands the docs promise exist and answer
like(`"$CLI" --version 2>&1`, qr/^amonitor \d+\.\d+\.\d+$/m,
    'amonitor --version prints the version');
my ($ver) = slurp("$ROOT/src/ngx_http_amonitor.h")
    =~ /#define NGX_HTTP_AMONITOR_VERSION\s+"([^"]+)"/;
like(`"$CLI" --version 2>&1`, qr/^amonitor \Q$ver\E$/m,
    "the agent's version ($ver), written once in src/ngx_http_amonitor.h");

done_testing();
