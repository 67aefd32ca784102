/* diffaug.c - the command-line tool: one binary, one subcommand per job. Each subcommand lives
 * in tools/cmd_<name>.c and is listed in the table below. Only tools call exit(). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "diffaug.h"

static const cli_command commands[] = {
    {"augment", "apply DiffuseMix, DiffCoRe-Mix or SGID to an image-folder dataset", cmd_augment},
    {"devices", "list the compute backends and GPUs this build can use", cmd_devices},
    {"inspect", "recognise a model file or folder: kind, configuration, every tensor", cmd_inspect},
    {"mkmodel", "write a random-weight model in a real file layout (tests, benchmarks)", cmd_mkmodel},
    {"generate", "txt2img, img2img or an InstructPix2Pix edit with an SD 1.x model, to PNG", cmd_generate},
    {"run", "run one network (unet, vae, text encoder, CLIP) on tensors from a file", cmd_run},
    {"caption", "BLIP captions of every image of a dataset, to a TSV", cmd_caption},
    {"tokenize", "CLIP token ids of prompts, as transformers' CLIPTokenizer gives them", cmd_tokenize},
    {"fractals", "write the procedural fractal set DiffuseMix blends (seeded, deterministic)", cmd_fractals},
    {"manifest", "merge shard manifests deterministically; summarise a manifest", cmd_manifest},
    {"mkdataset", "write a small synthetic ImageFolder dataset of procedural shapes", cmd_mkdataset},
    {"sheet", "a contact-sheet PNG grid of images", cmd_sheet},
    {"hash", "SHA-256 of files, as the manifest records model files", cmd_hash},
    {"scan", "list an ImageFolder dataset's classes, labels and problems", cmd_scan},
};

static void usage(FILE *fp) {
    fprintf(fp, "diffaug %s - generative data augmentation with Stable Diffusion, in C\n\n", DIFFAUG_VERSION);
    fprintf(fp, "usage: diffaug <command> [options]   (diffaug <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("diffaug %s\n", DIFFAUG_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "diffaug: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
