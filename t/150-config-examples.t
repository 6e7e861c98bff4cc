# The ready-made configurations in nginx-conf-examples/.  The whole files
# pass "nginx -t" exactly as their header shows it (a private prefix with
# the module in PREFIX/modules); the Debian drop-ins (debian/) pass it in
# a copy of Debian's /etc/nginx layout.  Each actually runs: with its ports
# moved to free ones and fake SDKs behind its targets, a panel connects
# and receives heartbeats.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::ConfCheck qw(nginx_t_whole nginx_t_debian private_prefix);
use Test::AMonitor::Redis;

# Instances made inside subtests are kept until the end of the file, so
# that the final check of the harness (every error.log clean, no forced
# stop) covers them too: it only sees instances that are still alive.
my @KEEP;

sub instance {
    my $i = Test::AMonitor->new(@_);
    push @KEEP, $i;
    return $i;
}


my $DIR = "$FindBin::Bin/../nginx-conf-examples";
my @files = sort glob("$DIR/*.conf");
my %names = map { (m{([^/]+)\.conf$})[0] => 1 } @files;

ok(@files >= 3, 'there are example configurations (' . scalar(@files)
    . ')');
ok($names{$_}, "$_.conf is among them") for qw(minimal multi-target
    multi-worker);

my $t = Test::AMonitor->new;    # for the module path and the binary
my $MODULE = $t->module_path;

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or die "$f: $!";
    local $/;
    return <$fh>;
}

sub nginx_t_ok {
    my ($rc, $out) = @_;
    is($rc, 0, 'nginx -t exits 0') or diag($out);
    like($out, qr/test is successful/, 'test is successful');
    unlike($out, qr/\[(?:emerg|alert|crit|warn)\]/,
        'no warning or error') or diag($out);
}

for my $file (@files) {
    my ($name) = $file =~ m{([^/]+)\.conf$};
    my $text = slurp($file);

    subtest "$name.conf passes nginx -t as its header shows" => sub {
        like($text, qr/^load_module modules\/ngx_http_amonitor_module\.so;$/m,
            'load_module relative to the prefix');
        like($text, qr/^#   nginx -t -p \/tmp\/amonitor -e logs\/error\.log -c "\$PWD\/nginx-conf-examples\/\Q$name\E\.conf"$/m,
            'the header shows the nginx -t command');
        like($text, qr/^#   cp build\/ngx_http_amonitor_module\.so \/tmp\/amonitor\/modules\/$/m,
            'and where the module goes');
        nginx_t_ok(nginx_t_whole(binary => $t->binary, module => $MODULE,
            %{ with_certs($text, $file) }));
    };

    subtest "$name.conf runs: panels connect and get heartbeats" => sub {
        run_example($text);
    };
}

# --- Debian drop-ins ---------------------------------------------------------

my $DEB = "$DIR/debian";
my $load = slurp("$DEB/modules-enabled/50-mod-http-amonitor.conf");
my $snippet = slurp("$DEB/conf.d/amonitor.conf");

is($load, "load_module modules/ngx_http_amonitor_module.so;\n",
    'modules-enabled/50-mod-http-amonitor.conf is the load_module line, as '
    . 'Debian\'s own module packages write it');
unlike($snippet, qr/^\s*(?:load_module|events|http)\b/m,
    'conf.d/amonitor.conf holds http-level lines only');

subtest 'the Debian drop-ins pass nginx -t in Debian\'s layout' => sub {
    nginx_t_ok(nginx_t_debian(binary => $t->binary, module => $MODULE,
        files => {
            'modules-enabled/50-mod-http-amonitor.conf' => $load,
            'conf.d/amonitor.conf' => $snippet,
        }));
};

subtest 'without the modules-enabled file nginx -t names the directive'
    => sub {
    my ($rc, $out) = nginx_t_debian(binary => $t->binary, module => $MODULE,
        files => { 'conf.d/amonitor.conf' => $snippet });
    isnt($rc, 0, 'nginx -t fails');
    like($out, qr/unknown directive "amonitor_zone"/, 'unknown directive');
};

subtest 'conf.d/amonitor.conf runs: panels connect and get heartbeats'
    => sub {
    # (access_log off: a sanitizer build's default log path is relative
    # to a prefix that has no logs/ directory)
    run_example("events {\n    worker_connections 1024;\n}\n\n"
        . "http {\n    access_log off;\n$snippet}\n");
};

done_testing();


# An example that reads certificates from /tmp/amonitor/certs (as its
# header makes them with scripts/tls-certs.sh) is checked in a private
# prefix with certificates made there: nginx_t_whole's arguments.
sub with_certs {
    my ($text, $file) = @_;
    return { file => $file } unless $text =~ m{/tmp/amonitor/certs/};
    my $prefix = private_prefix($MODULE);
    make_certs("$prefix/certs");
    (my $copy = $text) =~ s{/tmp/amonitor/}{$prefix/}g;
    return { prefix => $prefix, text => $copy };
}

sub make_certs {
    my ($dir) = @_;
    my $out = `bash '$FindBin::Bin/../scripts/tls-certs.sh' '$dir' 2>&1`;
    die "tls-certs.sh: $out" if $?;
}


# the example, its ports moved to free ones and fake SDKs behind its
# targets: nginx starts, a panel (with the example's token) gets heartbeats
sub run_example {
    my ($text) = @_;
    {
        my $workers = $text =~ /^\s*worker_processes\s+(\d+);/m ? $1 : 2;
        my $tt = instance(workers => $workers);
        my $body = $text;
        # the harness writes these itself
        $body =~ s/^\s*(?:load_module|worker_processes|error_log|pid|daemon|master_process)\b[^;]*;\s*$//mg;

        # certificates where the example reads them (wss:// examples)
        my $certs = $tt->prefix . '/certs';
        if ($body =~ m{/tmp/amonitor/certs/}) {
            make_certs($certs);
            $body =~ s{/tmp/amonitor/certs/}{$certs/}g;
        }

        # every target URL on 127.0.0.1 gets a fake SDK on a free port
        # (wss://: serving TLS with the certificate made above)
        my (%port_of, @sdks, $n);
        $n = 1;
        while ($body =~ /amonitor_target\s+(\S+)\s+(wss?):\/\/127\.0\.0\.1:(\d+)\/?\S*(?:\s+token=(\S+?))?;/g) {
            my ($id, $scheme, $port, $token) = ($1, $2, $3, $4);
            $port_of{$port} //= $tt->port($n++);
            push @sdks, fake_sdk(port => $port_of{$port}, target_id => $id,
                heartbeat_interval => 0.2, (defined $token
                    ? (token => $token) : ()), ($scheme eq 'wss'
                    ? (tls => { cert => "$certs/sdk.crt",
                        key => "$certs/sdk.key" }) : ()));
        }
        ok(@sdks >= 1, 'it has targets (' . scalar(@sdks) . ')');
        $body =~ s{(wss?)://127\.0\.0\.1:(\d+)}{
            "$1://127.0.0.1:" . ($port_of{$2} // $2) }ge;
        $body =~ s/^(\s*listen\s+)(?:127\.0\.0\.1:)?(\d+)\b/${1}127.0.0.1:%%PORT_0%%/mg;
        $body =~ s{(\s)logs/}{$1%%PREFIX%%/}g;

        # a cluster example gets a redis-server of its own, and each SDK
        # one agent connection in the whole cluster
        my ($redis, $conns) = (undef, $workers);
        if ($body =~ /^\s*amonitor_cluster\s+on\b/m) {
            $redis = Test::AMonitor::Redis->new;
            ok($redis->start, 'a redis-server for the cluster example');
            $body =~ s/(amonitor_redis\s+)127\.0\.0\.1:\d+/$1 . $redis->addr/e;
            $conns = 1;
        }

        my ($ptoken) = $body =~ /amonitor_panel_token\s+"?([^";\s]+)"?;/;
        my ($path) = $body =~ /location\s+=?\s*(\S+)\s*\{[^}]*amonitor_panel\s+on/;

        $tt->write_config(conf => $body);
        ok($tt->try_run, 'nginx starts with it') or do {
            diag($tt->start_error);
            return;
        };
        for my $s (@sdks) {
            ok($s->wait_connections($conns), 'SDK ' . $s->target_id
                . " has $conns agent connection(s)")
                or diag('it has ' . $s->connections);
        }
        if ($redis) {
            sleep_loop(1);
            is($_->connections, 1, $_->target_id . ': still one')
                for @sdks;
        }
        my $p = $tt->panel($path // '/ws/panel', headers => { defined $ptoken
            ? (Authorization => "Bearer $ptoken") : () });
        my %seen;
        wait_for(sub {
            while (my $m = $p->recv(0.05)) {
                $seen{ $m->{json}{target_id} // '' }++
                    if ($m->{json}{type} // '') eq 'heartbeat';
            }
            return !grep { !$seen{ $_->target_id } } @sdks;
        }, 5);
        for my $s (@sdks) {
            ok($seen{ $s->target_id }, 'the panel gets heartbeats of '
                . $s->target_id);
        }
        if ($body =~ /location\s+=?\s*(\/healthz)/) {
            is($tt->http_get('/healthz')->{body}, "ok\n", '/healthz answers');
        }
        if ($body =~ /location\s+=\s*(\/amonitor\/status)/) {
            my $st = decode_json($tt->http_get('/amonitor/status')->{body});
            is(scalar @{ $st->{targets} }, scalar @sdks,
                'the status page lists every target');
        }
        $p->close(1000);
        ok($tt->stop, 'nginx stops');
        $_->stop for @sdks;
        $redis->stop if $redis;
    }
}
