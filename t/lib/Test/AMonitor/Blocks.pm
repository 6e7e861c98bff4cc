package Test::AMonitor::Blocks;

# The data-block runner of the harness, in the spirit of
# Test::Nginx::Socket: run_tests() reads the test file's __DATA__ blocks
# (=== TEST n: name, then --- sections), and runs each as a subtest: it
# (re)starts nginx with the block's configuration and fake SDKs, sends
# its HTTP request or WebSocket messages, matches what comes back, stops
# nginx and checks the lines the block added to the error log.  The
# sections are listed in docs/testing.md.

use strict;
use warnings;

use Carp qw(croak);
use Exporter 'import';
use Test::More ();

use Test::AMonitor::FakeSDK qw(fake_sdk);
use Test::AMonitor::Nginx;
use Test::AMonitor::Panel qw(panel_try_connect);
use Test::AMonitor::Raw qw(raw_http parse_http_response);
use Test::AMonitor::Util qw(wait_for sleep_loop tscale);

our @EXPORT_OK = qw(run_tests parse_blocks);


# parse Test::Nginx::Socket-style blocks from text
sub parse_blocks {
    my ($text) = @_;
    my (@blocks, $b, $sec);

    for my $line (split /\n/, $text) {
        if ($line =~ /^===\s*(.*?)\s*$/) {
            push @blocks, $b if $b;
            $b = { name => $1, sections => {}, order => [] };
            $sec = undef;
            next;
        }
        next unless $b;
        if ($line =~ /^---\s+(\w+)\s*(.*?)\s*$/) {
            my ($name, $rest) = ($1, $2);
            $sec = { name => $name, lines => [], filters => [] };
            if ($rest =~ s/^:\s*//) {
                $sec->{inline} = $rest;
            }
            elsif (length $rest) {
                $sec->{filters} = [split ' ', $rest];
            }
            $b->{sections}{$name} = $sec;
            push @{ $b->{order} }, $name;
            next;
        }
        push @{ $sec->{lines} }, $line if $sec;
    }
    push @blocks, $b if $b;

    for my $blk (@blocks) {
        for my $s (values %{ $blk->{sections} }) {
            my $v;
            if (defined $s->{inline}) {
                $v = $s->{inline};
            }
            else {
                my @l = @{ $s->{lines} };
                pop @l while @l && $l[-1] =~ /^\s*$/;
                $v = @l ? join("\n", @l) . "\n" : '';
            }
            for my $f (@{ $s->{filters} }) {
                if ($f eq 'chomp') {
                    chomp $v;
                }
                elsif ($f eq 'eval') {
                    my $r = eval $v;
                    die "--- $s->{name} eval: $@" if $@;
                    $v = $r;
                }
                else {
                    die "unknown filter '$f' in --- $s->{name}\n";
                }
            }
            $s->{value} = $v;
        }
    }
    return @blocks;
}

sub _sec {
    my ($b, $n) = @_;
    return $b->{sections}{$n} ? $b->{sections}{$n}{value} : undef;
}

sub _has { exists $_[0]{sections}{ $_[1] } }

sub _lines {
    my ($v) = @_;
    return () unless defined $v;
    return @$v if ref $v eq 'ARRAY';
    return grep { length } map { s/\r\z//r } split /\n/, $v;
}

# run_tests(%opt): run the __DATA__ blocks of the test script, one nginx
# (re)start per block, then done_testing().
#   opt: module => 0|1, workers => N, data => $text (instead of __DATA__),
#        done => 0 (do not call done_testing)
sub run_tests {
    my (%opt) = @_;
    my ($text, @blocks, $t);

    $text = $opt{data};
    if (!defined $text) {
        no strict 'refs';
        my $fh = \*{'main::DATA'};
        local $/;
        $text = <$fh>;
        croak "run_tests: the test script has no __DATA__" unless defined $text;
    }
    @blocks = parse_blocks($text);
    croak "run_tests: no blocks found" unless @blocks;

    $t = Test::AMonitor::Nginx->new(module => $opt{module} // 1,
        workers => $opt{workers} // 1);

    my @only = grep { _has($_, 'ONLY') } @blocks;
    @blocks = @only if @only;

    for my $b (@blocks) {
        if (_has($b, 'SKIP') || _has($b, 'skip')) {
            Test::More::subtest($b->{name} => sub {
                Test::More::plan(skip_all => _sec($b, 'skip')
                    // _sec($b, 'SKIP') // 'skipped');
            });
            next;
        }
        Test::More::subtest($b->{name} => sub {
            _run_block($t, $b, \%opt);
        });
    }

    Test::More::done_testing() unless defined $opt{done} && !$opt{done};
    return $t;
}

sub _parse_sdk_line {
    my ($t, $line) = @_;
    my %o;
    for my $kv (split ' ', $line) {
        my ($k, $v) = split /=/, $kv, 2;
        $v //= 1;
        $v =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        $o{$k} = $v;
    }
    if (defined $o{port}) {
        $o{port} = $t->port($1) if $o{port} =~ /^(?:PORT_)?(\d{1,3})$/;
        $o{port} = $t->fill($o{port});
    }
    if (defined $o{actions}) {
        my %a;
        for my $spec (split /,/, $o{actions}) {
            my ($name, $ok, $msg) = split /:/, $spec, 3;
            $a{$name} = [$ok, $msg // ($ok ? 'ok' : 'failed')];
        }
        $o{actions} = \%a;
    }
    return %o;
}

sub _run_block {
    my ($t, $b, $opt) = @_;
    my ($timeout, @sdks, %want);

    # placeholders work in every section (ports in messages, paths, ...)
    for my $sec (values %{ $b->{sections} }) {
        $sec->{value} = $t->fill($sec->{value})
            if defined $sec->{value} && !ref $sec->{value};
    }

    $timeout = tscale(_sec($b, 'timeout') // 5);
    $t->workers(_sec($b, 'workers') // $opt->{workers} // 1);
    $t->module(_has($b, 'no_module') ? 0 : ($opt->{module} // 1));
    $t->write_config(
        main_config   => _sec($b, 'main_config') // '',
        events_config => _sec($b, 'events_config') // '',
        http_config   => _sec($b, 'http_config') // '',
        config        => _sec($b, 'config') // '',
    );

    for my $re (_lines(_sec($b, 'nginx_V_like'))) {
        Test::More::like(_nginx_V($t), qr/$re/,
            "nginx -V output matches /$re/");
    }

    # configuration checks: nginx -t only
    if (grep { _has($b, $_) } qw(nginx_t_fails nginx_t_ok nginx_t_like
        nginx_t_unlike nginx_t_emerg))
    {
        _block_nginx_t($t, $b);
        return;
    }

    for my $line (_lines(_sec($b, 'fake_sdk'))) {
        my %o = _parse_sdk_line($t, $line);
        my $want = delete $o{connections}
            // ($t->module ? $t->effective_workers : 0);
        $want = 0 if defined $o{wait} && !$o{wait};
        delete $o{wait};
        my $sdk = fake_sdk(%o);
        push @sdks, $sdk;
        $want{$sdk} = $want;
    }

    $t->mark_log;
    if (!Test::More::ok($t->try_run, 'nginx starts')) {
        Test::More::diag($t->start_error);
        $_->stop for @sdks;
        return;
    }

    for my $sdk (@sdks) {
        next unless $want{$sdk};
        Test::More::ok($sdk->wait_connections($want{$sdk}, $timeout),
            "fake SDK " . $sdk->target_id . " has $want{$sdk} agent"
            . " connection(s)")
            or Test::More::diag("it has " . $sdk->connections);
    }

    _block_request($t, $b, $timeout) if _has($b, 'request')
        || _has($b, 'raw_request');
    _block_ws($t, $b, $timeout) if _has($b, 'ws_request');

    if (_has($b, 'sdk_actions_like')) {
        my $i = 0;
        for my $re (_lines(_sec($b, 'sdk_actions_like'))) {
            my $hit = wait_for(sub {
                my @a = map { $_->actions_raw } @sdks;
                while ($i < @a) {
                    return 1 if $a[$i++] =~ /$re/;
                }
                return 0;
            }, $timeout);
            Test::More::ok($hit, "fake SDK received an action matching /$re/")
                or Test::More::diag("actions: " . join("\n",
                    map { $_->actions_raw } @sdks));
        }
    }

    sleep_loop(_sec($b, 'wait')) if _has($b, 'wait');

    if (_has($b, 'sdk_actions')) {
        sleep_loop(0.3);
        my $n = 0;
        $n += scalar($_->actions) for @sdks;
        Test::More::is($n, _sec($b, 'sdk_actions') + 0,
            'number of actions the fake SDKs received');
    }

    Test::More::ok($t->stop, 'nginx stops on QUIT');
    $_->stop for @sdks;

    my $log = $t->read_error_log;
    for my $s (_lines(_sec($b, 'error_log'))) {
        Test::More::ok(index($log, $s) >= 0, "error log has \"$s\"");
    }
    for my $re (_lines(_sec($b, 'error_log_like'))) {
        Test::More::like($log, qr/$re/, "error log matches /$re/");
    }
    for my $s (_lines(_sec($b, 'no_error_log'))) {
        my @hits = grep { index($_, $s) >= 0 } split /\n/, $log;
        Test::More::ok(!@hits, "error log has no \"$s\"")
            or Test::More::diag(join "\n", @hits[0 .. ($#hits > 9 ? 9
                : $#hits)]);
    }
    for my $re (_lines(_sec($b, 'no_error_log_like'))) {
        Test::More::unlike($log, qr/$re/, "error log does not match /$re/");
    }
}

# the output of "nginx -V" of the binary under test
sub _nginx_V {
    my ($t) = @_;
    my $bin = $t->binary;
    my $v = `"$bin" -V 2>&1`;
    return $v // '';
}

# nginx_t_ok / nginx_t_fails / nginx_t_emerg, nginx_t_emerg_line,
# nginx_t_like, nginx_t_unlike: "nginx -t" on the block's configuration
sub _block_nginx_t {
    my ($t, $b) = @_;
    my ($st, $out) = $t->nginx_t;

    if (_has($b, 'nginx_t_ok')) {
        Test::More::is($st, 0, 'nginx -t succeeds')
            or Test::More::diag($out);
    }
    else {
        Test::More::isnt($st, 0, 'nginx -t fails')
            or Test::More::diag($out);
    }

    if (defined(my $msg = _sec($b, 'nginx_t_emerg'))) {
        chomp $msg;
        Test::More::like($out,
            qr/^nginx: \[emerg\] \Q$msg\E in \S+nginx\.conf:\d+$/m,
            "the [emerg] line says: $msg")
            or Test::More::diag($out);
        Test::More::unlike($out, qr/test is successful/,
            'no "test is successful"');
    }

    if (defined(my $d = _sec($b, 'nginx_t_emerg_line'))) {
        # the configuration line the [emerg] names: "in FILE:LINE"
        chomp $d;
        my ($file, $n) = $out =~ /^nginx: \[emerg\] .*?(\S+\.conf):(\d+)/m;
        my ($fh, @l, $text);
        @l = <$fh> if $file && open($fh, '<', $file);
        $text = $l[$n - 1] if $n && @l >= $n;
        Test::More::like($text // '', qr/^\s*\Q$d\E\b/,
            "the line it names (" . ($n // 'none') . ") is \"$d\"")
            or Test::More::diag("line: " . ($text // 'none'));
    }

    for my $re (_lines(_sec($b, 'nginx_t_like'))) {
        Test::More::like($out, qr/$re/, "nginx -t output matches /$re/");
    }
    for my $re (_lines(_sec($b, 'nginx_t_unlike'))) {
        Test::More::unlike($out, qr/$re/,
            "nginx -t output does not match /$re/");
    }
}

sub _block_request {
    my ($t, $b, $timeout) = @_;
    my ($res, $raw);

    if (_has($b, 'raw_request')) {
        $raw = _sec($b, 'raw_request');
    }
    else {
        my ($line, @body) = split /\n/, _sec($b, 'request');
        my ($method, $uri, $ver) = split ' ', $line;
        my $body = @body ? join("\n", @body) : '';
        $raw = "$method $uri " . ($ver // 'HTTP/1.1') . "\r\n"
            . "Host: localhost\r\nConnection: close\r\n";
        for my $h (_lines(_sec($b, 'more_headers'))) {
            $raw .= "$h\r\n";
        }
        $raw .= "Content-Length: " . length($body) . "\r\n" if length $body;
        $raw .= "\r\n$body";
    }

    $res = parse_http_response(raw_http($t->port(0), $raw, $timeout));

    if (defined(my $c = _sec($b, 'response_code') // _sec($b, 'error_code'))) {
        Test::More::is($res->{code}, $c + 0, "response status is $c")
            or Test::More::diag($res->{raw});
    }
    if (defined(my $body = _sec($b, 'response_body'))) {
        Test::More::is($res->{body}, $body, 'response body');
    }
    if (defined(my $re = _sec($b, 'response_body_like'))) {
        chomp(my $r = $re);
        Test::More::like($res->{body}, qr/$r/s, 'response body matches');
    }
    for my $h (_lines(_sec($b, 'response_headers'))) {
        my ($k, $v) = $h =~ /^([^:]+):\s*(.*)$/ or next;
        Test::More::is($res->{headers}{ lc $k }, $v, "header $k");
    }
    for my $h (_lines(_sec($b, 'response_headers_like'))) {
        my ($k, $v) = $h =~ /^([^:]+):\s*(.*)$/ or next;
        Test::More::like($res->{headers}{ lc $k } // '', qr/$v/,
            "header $k matches /$v/");
    }
    return $res;
}

sub _send_line {
    my ($p, $line) = @_;
    if ($line =~ /^hex:\s*([0-9a-fA-F\s]*)$/) {
        (my $hex = $1) =~ s/\s+//g;
        $p->send_binary(pack('H*', $hex));
    }
    else {
        $p->send_text($line);
    }
}

sub _expect_msg {
    my ($p, $re, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $m = $p->recv_until(sub { $_[0]{data} =~ /$re/ }, $timeout);
    Test::More::ok($m, "panel received a message matching /$re/")
        or Test::More::diag("received:\n" . join("\n",
            map { "$_->{type}: $_->{data}" } $p->messages)
            . ($p->is_open ? '' : "\n(closed: " . ($p->close_code // '?')
                . ")"));
    return $m;
}

sub _block_ws {
    my ($t, $b, $timeout) = @_;
    my (%h, $p, $res, $url);

    for my $l (_lines(_sec($b, 'ws_headers'))) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        $h{$k} = $v;
    }
    $url = $t->ws_url(_sec($b, 'ws_request') =~ s/\s+\z//r);
    ($p, $res) = panel_try_connect($url, headers => \%h,
        timeout => $timeout);

    if (defined(my $want = _sec($b, 'ws_handshake_status'))) {
        Test::More::is($res->{code}, $want + 0,
            "panel handshake answered $want")
            or Test::More::diag("response: " . ($res->{code} // 'none')
                . " " . ($res->{body} // ''));
        if (!$p) {
            for my $hl (_lines(_sec($b, 'ws_response_headers_like'))) {
                my ($k, $v) = $hl =~ /^([^:]+):\s*(.*)$/ or next;
                Test::More::like($res->{headers}{ lc $k } // '', qr/$v/,
                    "handshake header $k matches /$v/");
            }
            return;
        }
    }
    elsif (!$p) {
        Test::More::fail('panel handshake succeeds');
        Test::More::diag("response: " . ($res->{code} // 'none') . " "
            . ($res->{error} // '') . " " . ($res->{body} // ''));
        return;
    }

    _send_line($p, $_) for _lines(_sec($b, 'ws_send'));

    for my $re (_lines(_sec($b, 'ws_expect_like'))) {
        _expect_msg($p, $re, $timeout);
    }

    # interleaved script: "> text" sends, "< regex" expects, "wait N",
    # "close CODE" closes, "ping" pings
    for my $l (_lines(_sec($b, 'ws_script'))) {
        if ($l =~ /^>\s?(.*)$/) {
            _send_line($p, $1);
        }
        elsif ($l =~ /^<\s?(.*)$/) {
            _expect_msg($p, $1, $timeout);
        }
        elsif ($l =~ /^wait\s+([\d.]+)$/) {
            sleep_loop($1);
        }
        elsif ($l =~ /^close(?:\s+(\d+))?$/) {
            $p->close($1 // 1000);
        }
        elsif ($l =~ /^ping$/) {
            Test::More::ok($p->ping(undef, $timeout), 'pong received');
        }
        else {
            Test::More::fail("ws_script: cannot parse \"$l\"");
        }
    }

    if (_has($b, 'ws_expect_close')) {
        my $want = _sec($b, 'ws_expect_close') + 0;
        my $code = $p->wait_closed($timeout);
        Test::More::is($code, $want, "server closed the panel with $want");
    }
    elsif ($p->is_open) {
        $p->close(1000);
    }
}


1;
