#!/usr/bin/env python3
"""Checks that what deploy/ describes would run, and stays in the regions it claims.

  python3 tests/deploy/check_deploy.py --bin build/bin --model build/models/tiny-qwen2.gguf

- deploy/etc/*.flags: each binary starts with its flag file (only the paths that
  exist on a real host are replaced), serves, and stops cleanly on SIGTERM.
- deploy/systemd/: each unit runs its binary with its flag file, waits longer than
  the flag file's drain timeout, and (where systemd-analyze exists) verifies with
  no complaint.
- deploy/kubernetes/: each region's overlay, rendered, pins the pods to nodes of
  that region and makes hr-cloud claim that same region; the ports agree; the
  grace period outlasts the drain; hr-cloud starts with the rendered arguments;
  every region of the backends file has an overlay and no overlay lacks one. Where
  kubectl exists, its rendering must equal ours.
- deploy/container/Containerfile: the image installs the Debian package of every
  shared library the binaries it copies load, and copies only files that exist.
"""

import argparse
import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
ARGS = None  # set in main()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def flag_lines(path):
    """The flags of an absl flag file: non-empty lines not starting with '#'."""
    lines = (l.strip() for l in read(path).splitlines())
    return [l for l in lines if l and not l.startswith("#")]


def flag_value(flags, name, default=None):
    """The value of --name=value among flags (the last one wins, as in absl)."""
    value = default
    for f in flags:
        if f.startswith("--%s=" % name):
            value = f.split("=", 1)[1]
    return value


def seconds(duration):
    """An absl duration such as "20s", "1m30s" or "500ms", in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|ns|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError("not a duration: %r" % duration)
    return sum(float(n) * units[u] for n, u in parts)


def binary(name):
    return os.path.join(ARGS.bin, name)


def serve_and_stop(test, argv):
    """Starts argv (which must take --port_file), waits until it serves, sends
    SIGTERM, asserts that it exits 0, and returns what it logged."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        log_path = os.path.join(tmp, "log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv + ["--port_file=" + port_file], stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while not os.path.exists(port_file) or not read(port_file).strip():
                if proc.poll() is not None:
                    test.fail("%s exited %d before serving:\n%s" %
                              (" ".join(argv), proc.returncode, read(log_path)))
                if time.time() > deadline:
                    test.fail("%s did not serve within 60 s:\n%s" % (" ".join(argv), read(log_path)))
                time.sleep(0.05)
            test.assertGreater(int(read(port_file)), 0)
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                test.fail("%s did not stop within 30 s of SIGTERM" % " ".join(argv))
            test.assertEqual(code, 0, "%s exited %d on SIGTERM:\n%s" %
                             (" ".join(argv), code, read(log_path)))
            return read(log_path)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# What a flag file names that only exists on a real host, replaced for the run.
def host_overrides(program):
    common = ["--listen=127.0.0.1:0", "--log_level=warn"]
    if program == "hr-cloud":
        return common + ["--model=" + ARGS.model, "--slots=1", "--threads=1",
                         "--policy=" + os.path.join(DEPLOY, "local", "policy.textproto")]
    return common + [
        "--model=" + ARGS.model, "--local_threads=1",
        "--policy=" + os.path.join(DEPLOY, "local", "policy.textproto"),
        "--backends=" + os.path.join(DEPLOY, "etc", "backends.textproto"),
        "--complexity_model=" + os.path.join(ROOT, "models", "complexity.pb"),
    ]


class FlagFiles(unittest.TestCase):
    def test_each_binary_serves_with_its_flag_file(self):
        for program in ("hr-cloud", "hr-device"):
            with self.subTest(program=program):
                path = os.path.join(DEPLOY, "etc", program + ".flags")
                serve_and_stop(self, [binary(program), "--flagfile=" + path] +
                               host_overrides(program))

    def test_a_misspelt_flag_is_refused(self):
        # The check above would mean nothing if unknown flags in a flag file passed.
        with tempfile.NamedTemporaryFile("w", suffix=".flags") as f:
            f.write("--region=cn-north-1\n--slotz=2\n")
            f.flush()
            run = subprocess.run([binary("hr-cloud"), "--flagfile=" + f.name],
                                 capture_output=True, text=True, timeout=30)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("slotz", run.stderr)

    def test_backends_beyond_one_machine_are_reached_over_tls(self):
        entries = [l for l in read(os.path.join(DEPLOY, "etc", "backends.textproto")).splitlines()
                   if l.startswith("backends {")]
        self.assertTrue(entries)
        for entry in entries:
            self.assertRegex(entry, r"\btls \{", entry)

    def test_backends_file_is_valid_for_the_policy(self):
        run = subprocess.run([binary("hrctl"), "validate",
                              "--policy=" + os.path.join(DEPLOY, "local", "policy.textproto"),
                              "--backends=" + os.path.join(DEPLOY, "etc", "backends.textproto")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


def unit_settings(text):
    """key -> list of values of a systemd unit (all sections)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


class SystemdUnits(unittest.TestCase):
    UNITS = {"hr-cloud.service": "hr-cloud", "hr-device.service": "hr-device"}

    def test_units_run_their_binary_with_its_flag_file_and_outwait_the_drain(self):
        found = sorted(os.listdir(os.path.join(DEPLOY, "systemd")))
        self.assertEqual(found, sorted(self.UNITS))
        for unit, program in self.UNITS.items():
            with self.subTest(unit=unit):
                s = unit_settings(read(os.path.join(DEPLOY, "systemd", unit)))
                self.assertEqual(s["ExecStart"], [
                    "/usr/local/bin/%s --flagfile=/etc/hybrid-router/%s.flags" % (program, program)])
                self.assertEqual(s["KillSignal"], ["SIGTERM"])
                flags = flag_lines(os.path.join(DEPLOY, "etc", program + ".flags"))
                drain = seconds(flag_value(flags, "drain_timeout", "10s"))
                self.assertGreater(seconds(s["TimeoutStopSec"][0] + "s"), drain + 5)

    def test_device_unit_reloads_with_sighup(self):
        s = unit_settings(read(os.path.join(DEPLOY, "systemd", "hr-device.service")))
        self.assertEqual(s["ExecReload"], ["/bin/kill -HUP $MAINPID"])

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_systemd_analyze_verify_has_no_complaint(self):
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for unit in self.UNITS:
                text = read(os.path.join(DEPLOY, "systemd", unit))
                # The binaries are where the build put them, not installed yet.
                text = text.replace("/usr/local/bin/", os.path.abspath(ARGS.bin) + "/")
                paths.append(os.path.join(tmp, unit))
                with open(paths[-1], "w") as f:
                    f.write(text)
            run = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths,
                                 capture_output=True, text=True, timeout=60)
            complaints = [l for l in (run.stdout + run.stderr).splitlines() if l.strip()]
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(complaints, [])


def json_patch(doc, ops):
    """Applies RFC 6902 `replace` and `add` operations (all the overlays use)."""
    for op in ops:
        if op["op"] not in ("replace", "add"):
            raise ValueError("unsupported patch op %r" % op["op"])
        keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].split("/")[1:]]
        node = doc
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            if op["op"] == "add":
                node.insert(len(node) if last == "-" else int(last), op["value"])
            else:
                node[int(last)] = op["value"]
        else:
            if op["op"] == "replace" and last not in node:
                raise KeyError("replace of missing %s" % op["path"])
            node[last] = op["value"]


def render(region):
    """The documents of regions/<region>, rendered as kustomize would."""
    overlay = yaml.safe_load(read(os.path.join(DEPLOY, "kubernetes", "regions", region,
                                               "kustomization.yaml")))
    assert overlay["resources"] == ["../../base"], overlay["resources"]
    base_dir = os.path.join(DEPLOY, "kubernetes", "base")
    base = yaml.safe_load(read(os.path.join(base_dir, "kustomization.yaml")))
    docs = []
    for resource in base["resources"]:
        docs += [d for d in yaml.safe_load_all(read(os.path.join(base_dir, resource))) if d]
    for p in overlay.get("patches", []):
        targets = [d for d in docs if d["kind"] == p["target"]["kind"] and
                   d["metadata"]["name"] == p["target"]["name"]]
        assert len(targets) == 1, p["target"]
        json_patch(targets[0], yaml.safe_load(p["patch"]))
    return docs


def backends_regions():
    text = read(os.path.join(DEPLOY, "etc", "backends.textproto"))
    return set(re.findall(r'\bregion:\s*"([^"]+)"', text))


class Kubernetes(unittest.TestCase):
    def regions(self):
        return sorted(os.listdir(os.path.join(DEPLOY, "kubernetes", "regions")))

    def test_every_backend_region_has_an_overlay_and_no_other(self):
        self.assertEqual(set(self.regions()), backends_regions())

    def test_pods_run_only_in_the_region_they_claim(self):
        for region in self.regions():
            with self.subTest(region=region):
                docs = render(region)
                deployments = [d for d in docs if d["kind"] == "Deployment"]
                self.assertEqual(len(deployments), 1)
                spec = deployments[0]["spec"]["template"]["spec"]
                terms = spec["affinity"]["nodeAffinity"][
                    "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                # Every term (they are ORed) must pin the region.
                for term in terms:
                    pins = [e for e in term["matchExpressions"]
                            if e["key"] == "topology.kubernetes.io/region"]
                    self.assertEqual(pins, [{"key": "topology.kubernetes.io/region",
                                             "operator": "In", "values": [region]}])
                self.assertNotIn("nodeName", spec)
                (container,) = spec["containers"]
                claims = [a for a in container["args"] if a.startswith("--region")]
                self.assertEqual(claims, ["--region=" + region])

    def test_ports_probes_and_grace_period_agree(self):
        for region in self.regions():
            with self.subTest(region=region):
                docs = render(region)
                deployment = next(d for d in docs if d["kind"] == "Deployment")
                service = next(d for d in docs if d["kind"] == "Service")
                spec = deployment["spec"]["template"]["spec"]
                (container,) = spec["containers"]
                listen = flag_value(container["args"], "listen")
                port = int(listen.rsplit(":", 1)[1])
                self.assertFalse(listen.startswith("127."), "a pod must listen beyond loopback")
                (declared,) = container["ports"]
                self.assertEqual(declared["containerPort"], port)
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    self.assertEqual(container[probe]["grpc"]["port"], port, probe)
                (service_port,) = service["spec"]["ports"]
                self.assertEqual(service_port["targetPort"], declared["name"])
                self.assertEqual(service["spec"]["selector"],
                                 deployment["spec"]["selector"]["matchLabels"])
                drain = seconds(flag_value(container["args"], "drain_timeout", "10s"))
                self.assertGreater(spec["terminationGracePeriodSeconds"], drain + 5)

    def test_hr_cloud_starts_with_the_rendered_arguments(self):
        # With the example policy, each region's backend serves some jurisdiction
        # on its model family: a backend the policy gives nothing to would refuse
        # every request.
        for region in self.regions():
            with self.subTest(region=region):
                docs = render(region)
                container = next(d for d in docs if d["kind"] == "Deployment")[
                    "spec"]["template"]["spec"]["containers"][0]
                self.assertEqual(container["command"], ["/usr/local/bin/hr-cloud"])
                log = serve_and_stop(self, [binary("hr-cloud")] + container["args"] +
                                     host_overrides("hr-cloud"))
                self.assertNotIn("allows no jurisdiction", log)

    def test_the_policy_comes_from_a_config_map_that_updates_reach(self):
        for region in self.regions():
            with self.subTest(region=region):
                spec = next(d for d in render(region) if d["kind"] == "Deployment")[
                    "spec"]["template"]["spec"]
                (container,) = spec["containers"]
                policy = flag_value(container["args"], "policy")
                self.assertIsNotNone(policy)
                mounts = [m for m in container["volumeMounts"]
                          if m["mountPath"] == os.path.dirname(policy)]
                self.assertEqual(len(mounts), 1, "nothing mounted where --policy points")
                # A subPath mount is a copy that ConfigMap updates never reach.
                self.assertNotIn("subPath", mounts[0])
                (volume,) = [v for v in spec["volumes"] if v["name"] == mounts[0]["name"]]
                self.assertEqual(volume["configMap"]["name"], "hybrid-router-policy")
                # Without the policy the pod must not start.
                self.assertFalse(volume["configMap"].get("optional", False))
                # hr-cloud watches it (a zero interval would not).
                self.assertGreater(seconds(flag_value(container["args"], "watch_interval",
                                                      "2s")), 0)

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not installed")
    def test_kubectl_renders_the_same(self):
        for region in self.regions():
            with self.subTest(region=region):
                run = subprocess.run(["kubectl", "kustomize", os.path.join(
                    DEPLOY, "kubernetes", "regions", region)], capture_output=True, text=True,
                    timeout=60)
                self.assertEqual(run.returncode, 0, run.stderr)
                key = lambda d: (d["kind"], d["metadata"]["name"])
                theirs = sorted((d for d in yaml.safe_load_all(run.stdout) if d), key=key)
                ours = sorted(render(region), key=key)
                self.assertEqual(theirs, ours)

    def test_the_base_alone_pins_no_real_region(self):
        base = [d for d in yaml.safe_load_all(read(os.path.join(
            DEPLOY, "kubernetes", "base", "hr-cloud.yaml"))) if d]
        text = yaml.safe_dump(base)
        for region in backends_regions():
            self.assertNotIn(region, text)


class Containerfile(unittest.TestCase):
    def setUp(self):
        self.text = read(os.path.join(DEPLOY, "container", "Containerfile"))
        # The final stage: after the last FROM.
        self.final = self.text[self.text.rindex("\nFROM "):]

    def copied_binaries(self):
        out = []
        for line in self.final.splitlines():
            if line.startswith("COPY --from=build"):
                out += [os.path.basename(p) for p in line.split()[2:-1]
                        if p.startswith("/src/build/bin/")]
        return out

    def test_installs_the_package_of_every_library_the_binaries_load(self):
        installed = set(re.findall(r"\b(lib[a-z0-9.+-]+|zlib1g)\b",
                                   self.final.split("apt-get install", 1)[1].split("&&", 1)[0]))
        binaries = self.copied_binaries()
        self.assertEqual(sorted(binaries), ["hr-cloud", "hr-device", "hrctl"])
        for b in binaries:
            ldd = subprocess.run(["ldd", binary(b)], capture_output=True, text=True, check=True)
            for lib in re.findall(r"=> (/\S+)", ldd.stdout):
                real = os.path.realpath(lib)
                owner = None
                for path in (lib, real, "/usr" + lib):
                    run = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
                    if run.returncode == 0:
                        owner = run.stdout.split(":", 1)[0]
                        break
                self.assertIsNotNone(owner, "%s loads %s, which no Debian package owns" % (b, lib))
                with self.subTest(binary=b, library=lib):
                    self.assertIn(owner, installed)

    def test_copies_only_what_exists(self):
        for line in self.final.splitlines():
            if not line.startswith("COPY --from=build"):
                continue
            for src in line.split()[2:-1]:
                rel = src[len("/src/"):]
                if rel.startswith("build/bin/"):
                    self.assertTrue(os.access(binary(os.path.basename(rel)), os.X_OK), rel)
                else:
                    self.assertTrue(os.path.exists(os.path.join(ROOT, rel)), rel)

    def test_default_command_is_a_flag_file_that_exists(self):
        cmd = re.search(r'^CMD \["--flagfile=/etc/hybrid-router/([^"]+)"\]', self.final, re.M)
        self.assertIsNotNone(cmd)
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, "etc", cmd.group(1))))
        self.assertIn("COPY --from=build /src/deploy/etc/ /etc/hybrid-router/", self.final)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="directory of the built binaries")
    parser.add_argument("--model", required=True, help="a GGUF model the binaries can load")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
